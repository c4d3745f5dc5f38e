import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

/**
 * Security headers on every answer (issue 15, finding 4): a Content-Security-Policy under which the built app runs
 * and nothing injected does, no framing by other sites (clickjacking), no MIME sniffing, no referrer to other
 * origins, and HSTS when the request came over TLS (directly, or through a trusted proxy's X-Forwarded-Proto).
 *
 * The SPA's fallback page bootstraps SvelteKit with one inline script; the policy allows exactly that script by
 * its SHA-256, read from the built index.html (again whenever the file changes, as after a new build), and no
 * other inline script. Inline `style` attributes stay allowed: Svelte writes some, and styles cannot run code.
 */
export function securityHeaders(app: FastifyInstance, staticDir: string): void {
	const indexHtml = path.join(staticDir, 'index.html');
	let cached: { mtimeMs: number; policy: string } | undefined;
	const policy = (): string => {
		let mtimeMs = -1;
		try {
			mtimeMs = fs.statSync(indexHtml).mtimeMs;
		} catch {
			// No built client: a policy without inline scripts.
		}
		if (cached?.mtimeMs !== mtimeMs) {
			const html = mtimeMs >= 0 ? fs.readFileSync(indexHtml, 'utf8') : '';
			cached = { mtimeMs, policy: contentSecurityPolicy(inlineScriptHashes(html)) };
		}
		return cached.policy;
	};
	app.addHook('onSend', async (request, reply) => {
		// A response with a stricter policy of its own (a stored file: sandboxed, nothing loads) keeps it.
		if (!reply.hasHeader('content-security-policy')) reply.header('content-security-policy', policy());
		reply.header('x-content-type-options', 'nosniff');
		reply.header('x-frame-options', 'DENY');
		reply.header('referrer-policy', 'same-origin');
		reply.header('cross-origin-opener-policy', 'same-origin');
		if (request.protocol === 'https')
			reply.header('strict-transport-security', 'max-age=31536000; includeSubDomains');
	});
}

/** `'sha256-…'` sources for each inline `<script>` of a page. */
export function inlineScriptHashes(html: string): string[] {
	return [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map(
		(m) =>
			`'sha256-${createHash('sha256')
				.update(m[1] as string)
				.digest('base64')}'`,
	);
}

export function contentSecurityPolicy(scriptHashes: string[]): string {
	return [
		"default-src 'self'",
		`script-src 'self' ${scriptHashes.join(' ')}`.trim(),
		"style-src 'self' 'unsafe-inline'",
		"img-src 'self' data: blob:",
		"font-src 'self'",
		// Same-origin fetches and the /collab WebSocket ('self' covers ws: and wss: of the same host).
		"connect-src 'self'",
		"worker-src 'self'",
		"manifest-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	].join('; ');
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
	chromiumAvailable,
	ensureBuilt,
	launchBrowser,
	startAppServer,
	type AppServer,
	type BrowserSession,
	type SharedBrowser,
} from '../helpers/browser.ts';
import { UI_TIMEOUT, signUp } from '../helpers/live-ui.ts';

/**
 * The shipped Content-Security-Policy (server/http/security-headers.ts) against the built app in Chromium: the
 * app runs under it without a single violation, and another page cannot frame it (issue 15, finding 4).
 */
describe.skipIf(!chromiumAvailable)('the security headers', () => {
	let server: AppServer;
	let browser: SharedBrowser;
	const sessions: BrowserSession[] = [];

	beforeAll(async () => {
		server = await startAppServer(await ensureBuilt());
		browser = await launchBrowser();
	}, 180_000);

	afterAll(async () => {
		for (const s of sessions) await s.close();
		await browser?.close();
		await server?.stop();
	});

	it('come with every answer: a CSP with frame-ancestors none, nosniff, a referrer policy; no HSTS over plain HTTP', async () => {
		for (const path of ['/', '/rooms/x', '/api/me', '/manifest.webmanifest']) {
			const res = await fetch(`${server.url}${path}`);
			const csp = res.headers.get('content-security-policy') ?? '';
			expect(csp, path).toContain("frame-ancestors 'none'");
			expect(csp, path).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
			expect(csp, path).not.toContain('unsafe-eval');
			expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
			expect(res.headers.get('referrer-policy'), path).toBe('same-origin');
			expect(res.headers.get('strict-transport-security'), path).toBeNull();
		}
	});

	it('let the app run with no violation: sign up, start a room, write, search', async () => {
		const session = await browser.newSession();
		sessions.push(session);
		await session.context.addInitScript(() => {
			const violations: string[] = [];
			Object.assign(window, { __violations: violations });
			document.addEventListener('securitypolicyviolation', (event) =>
				violations.push(
					`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}:${event.columnNumber}`,
				),
			);
		});
		const ana = await signUp(session, server.url, 'ana');
		const page = ana.page;
		const res = await fetch(`${server.url}/api/rooms`, {
			method: 'POST',
			headers: { 'content-type': 'application/json', authorization: `Bearer ${ana.accessToken}` },
			body: JSON.stringify({ name: 'Under CSP', isGroup: true, memberIds: [] }),
		});
		const roomId = ((await res.json()) as { id: string }).id;
		await page.locator(`[data-room-id="${roomId}"]`).first().click();
		await page.getByTestId('composer').waitFor({ timeout: UI_TIMEOUT });
		await page.getByTestId('composer').fill('written under the policy');
		await page.getByTestId('composer').press('Enter');
		await page.getByText('written under the policy').first().waitFor({ timeout: UI_TIMEOUT });
		await page.goto(`${server.url}/search`);
		await page.waitForLoadState('networkidle');

		const violations = await page.evaluate(
			() => (window as unknown as { __violations: string[] }).__violations,
		);
		expect(violations).toEqual([]);
		expect(session.errors(page).filter((e) => /Content Security Policy|Refused to/i.test(e))).toEqual([]);
	});

	it('cannot be framed by another page', async () => {
		const session = await browser.newSession();
		sessions.push(session);
		const page = await session.page();
		await page.setContent(`<iframe id="framed" src="${server.url}/login" width="600" height="400"></iframe>`);
		const frame = await (await page.waitForSelector('#framed')).contentFrame();
		await page.waitForTimeout(1_000);
		// Chromium replaces a refused frame with its error page: the app's own markup never loads there.
		const appLoaded = await frame
			?.evaluate(() => document.querySelector('script[src*="/_app/"], link[href*="/_app/"]') !== null)
			.catch(() => false);
		expect(appLoaded).toBe(false);
	});
});

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { TokenError, type AccessClaims, type TokenService } from '../auth/tokens.ts';
import { AppError, authFailed } from '../errors.ts';
import { inSpan } from '../tracing.ts';

export const REFRESH_COOKIE = 'refresh_token';

/** The authenticated user of a request, from `Authorization: Bearer <access token>`. */
export function requireUser(request: FastifyRequest, tokens: TokenService): Promise<AccessClaims> {
	return inSpan('chat.authenticate', { attributes: { 'chat.channel': 'http' } }, () =>
		verifyBearer(request, tokens),
	);
}

async function verifyBearer(request: FastifyRequest, tokens: TokenService): Promise<AccessClaims> {
	const header = request.headers.authorization;
	const match = header?.match(/^Bearer ([A-Za-z0-9._~+/=-]+)$/);
	if (!match?.[1]) throw authFailed('missing_token', 'unauthorized', 'sign in first: missing bearer token');
	try {
		return await tokens.verifySession(match[1]);
	} catch (error) {
		if (error instanceof TokenError && error.code === 'token_expired') {
			throw authFailed('token_expired', 'unauthorized', 'access token expired; refresh it');
		}
		if (error instanceof TokenError && error.code === 'session_ended') {
			throw authFailed('session_ended', 'unauthorized', 'this session has ended; sign in again');
		}
		// The database could not say whether the session is live: a server problem, not a bad token.
		if (!(error instanceof TokenError)) throw error;
		throw authFailed('token_invalid', 'unauthorized', 'access token invalid');
	}
}

/** Parses untrusted input with a shared schema; a failure is a 400 naming each bad field. */
export function parse<S extends z.ZodType>(schema: S, input: unknown, what = 'request body'): z.infer<S> {
	const result = schema.safeParse(input ?? {});
	if (result.success) return result.data;
	const issues = result.error.issues.map((i) => ({
		path: i.path.join('.') || '(root)',
		message: i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
	}));
	throw new AppError(
		'validation_failed',
		`invalid ${what}: ${issues.map((i) => (i.path === '(root)' ? i.message : `${i.path}: ${i.message}`)).join('; ')}`,
		issues,
	);
}

export function readCookie(request: FastifyRequest, name: string): string | undefined {
	const header = request.headers.cookie;
	if (!header) return undefined;
	for (const part of header.split(';')) {
		const [k, ...v] = part.trim().split('=');
		if (k !== name) continue;
		// Our tokens are base64url: a value that does not even decode is no token of ours.
		try {
			return decodeURIComponent(v.join('='));
		} catch {
			return undefined;
		}
	}
	return undefined;
}

export function setRefreshCookie(
	reply: FastifyReply,
	token: string | null,
	opts: { secure: boolean; maxAgeDays: number },
) {
	const attrs = [
		`${REFRESH_COOKIE}=${token ? encodeURIComponent(token) : ''}`,
		'Path=/api/auth',
		'HttpOnly',
		'SameSite=Strict',
		`Max-Age=${token ? opts.maxAgeDays * 86400 : 0}`,
	];
	if (opts.secure) attrs.push('Secure');
	reply.header('set-cookie', attrs.join('; '));
}

import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { z } from 'zod';
import type { Config } from '../config.ts';

/** What an access token proves about its bearer. */
export interface AccessClaims {
	userId: string;
	name: string;
	/**
	 * The session (refresh-token family) the token was issued to: logging out, a password change or a deleted
	 * account ends it, and its tokens then open nothing. Absent only in tokens signed before sessions were named.
	 */
	sessionId?: string;
	/** When the token expires (ms since the epoch); absent when signing. */
	expiresAt?: number;
}

const ISSUER = 'chat';
const AUDIENCE = 'chat:access';

interface Key {
	kid: string;
	secret: Uint8Array;
}

const claimsSchema = z.object({
	sub: z.uuid(),
	name: z.string().min(1),
	typ: z.literal('access'),
	sid: z.uuid().optional(),
	exp: z.number(),
	iat: z.number(),
});

/** How many verified tokens a node remembers (about 0.5 KB each). */
const VERIFIED_TOKENS_MAX = 10_000;

/** Clocks of the nodes that sign and verify may differ by this much. */
const CLOCK_SKEW_S = 60;

export class TokenError extends Error {
	readonly code: 'token_expired' | 'token_invalid' | 'session_ended';
	constructor(code: 'token_expired' | 'token_invalid' | 'session_ended', message: string) {
		super(message);
		this.code = code;
	}
}

function toKey(secret: string): Key {
	return {
		kid: createHash('sha256').update(secret).digest('base64url').slice(0, 12),
		secret: new TextEncoder().encode(secret),
	};
}

/**
 * In production JWT_SECRET is required (config enforces it). In development and tests a secret is
 * generated once and kept in DATA_DIR, so tokens survive a restart.
 */
function resolveSecret(config: Config): string {
	if (config.JWT_SECRET) return config.JWT_SECRET;
	const file = path.join(config.DATA_DIR, 'jwt-secret');
	try {
		const existing = fs.readFileSync(file, 'utf8').trim();
		if (existing.length >= 32) return existing;
	} catch (error) {
		if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
	}
	fs.mkdirSync(config.DATA_DIR, { recursive: true });
	const secret = randomBytes(48).toString('base64url');
	fs.writeFileSync(file, secret, { mode: 0o600 });
	return secret;
}

/**
 * Signs with the current key and verifies with it or any previous one (JWT_PREVIOUS_SECRETS), by the
 * token's `kid`: rotating the secret does not log everybody out.
 */
export class TokenService {
	readonly #current: Key;
	readonly #byKid: Map<string, Key>;
	readonly #ttlSeconds: number;
	/**
	 * Tokens whose signature and claims passed, by their exact text: a device presents the same token for every
	 * document it opens on its socket and at each reconnect, and the HMAC check (about 0.1 ms) is the costliest
	 * part of a login. The expiry is checked again at every use; failures are never kept.
	 */
	readonly #verified = new Map<string, AccessClaims>();
	#sessionLive: ((sessionId: string, userId: string) => Promise<boolean>) | undefined;

	constructor(config: Config) {
		this.#current = toKey(resolveSecret(config));
		this.#byKid = new Map([this.#current, ...config.JWT_PREVIOUS_SECRETS.map(toKey)].map((k) => [k.kid, k]));
		this.#ttlSeconds = config.ACCESS_TOKEN_TTL_SECONDS;
	}

	async signAccess(claims: AccessClaims): Promise<string> {
		return new SignJWT({
			name: claims.name,
			typ: 'access',
			...(claims.sessionId ? { sid: claims.sessionId } : {}),
		})
			.setProtectedHeader({ alg: 'HS256', kid: this.#current.kid, typ: 'JWT' })
			.setSubject(claims.userId)
			.setIssuer(ISSUER)
			.setAudience(AUDIENCE)
			.setIssuedAt()
			.setExpirationTime(`${this.#ttlSeconds}s`)
			.sign(this.#current.secret);
	}

	/** Verifies signature (HS256 only: `alg: none` and others are refused), issuer, audience and expiry. */
	async verifyAccess(token: string): Promise<AccessClaims> {
		const known = this.#verified.get(token);
		if (known) {
			if ((known.expiresAt ?? 0) > Date.now()) return { ...known };
			this.#verified.delete(token);
			throw new TokenError('token_expired', 'access token expired');
		}
		const claims = await this.#verifySignature(token);
		if (this.#verified.size >= VERIFIED_TOKENS_MAX) {
			// The oldest first: a token seen long ago is the least likely to come back.
			const [oldest] = this.#verified.keys();
			if (oldest !== undefined) this.#verified.delete(oldest);
		}
		this.#verified.set(token, claims);
		return { ...claims };
	}

	async #verifySignature(token: string): Promise<AccessClaims> {
		let payload: JWTPayload;
		try {
			({ payload } = await jwtVerify(
				token,
				(header) => {
					const key = header.kid ? this.#byKid.get(header.kid) : undefined;
					if (!key) throw new TokenError('token_invalid', 'unknown signing key');
					return key.secret;
				},
				{ algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE },
			));
		} catch (error) {
			if (error instanceof TokenError) throw error;
			if (error instanceof joseErrors.JWTExpired)
				throw new TokenError('token_expired', 'access token expired');
			throw new TokenError('token_invalid', 'access token invalid');
		}
		const claims = claimsSchema.safeParse(payload);
		if (!claims.success) throw new TokenError('token_invalid', 'access token has unexpected claims');
		// A token signed with the real key is still refused when it claims more life than this server gives
		// (no expiry, or one a century away) or was issued in the future.
		const { iat, exp } = claims.data;
		if (iat > Date.now() / 1000 + CLOCK_SKEW_S || exp - iat > this.#ttlSeconds + CLOCK_SKEW_S)
			throw new TokenError('token_invalid', 'access token lifetime is not one this server issues');
		return {
			userId: claims.data.sub,
			name: claims.data.name,
			sessionId: claims.data.sid,
			expiresAt: claims.data.exp * 1000,
		};
	}

	/**
	 * `verifyAccess`, and the token's session must still be live (`checkSessionsWith`): a signed-out, replaced or
	 * deleted session's tokens are refused although they have not expired.
	 */
	async verifySession(token: string): Promise<AccessClaims> {
		const claims = await this.verifyAccess(token);
		await this.assertSessionLive(claims);
		return claims;
	}

	/** The session half of `verifySession`, for callers that act between the signature check and the database. */
	async assertSessionLive(claims: AccessClaims): Promise<void> {
		if (claims.sessionId && this.#sessionLive && !(await this.#sessionLive(claims.sessionId, claims.userId)))
			throw new TokenError('session_ended', 'this session has ended; sign in again');
	}

	/** Where `verifySession` asks whether a session is live (the database; set by the composition root). */
	checkSessionsWith(isLive: (sessionId: string, userId: string) => Promise<boolean>): void {
		this.#sessionLive = isLive;
	}
}

/** Opaque refresh tokens: 256 random bits; only their SHA-256 is stored. */
export function newRefreshToken(): { token: string; hash: string } {
	const token = randomBytes(32).toString('base64url');
	return { token, hash: hashRefreshToken(token) };
}

export function hashRefreshToken(token: string): string {
	return createHash('sha256').update(token).digest('hex');
}

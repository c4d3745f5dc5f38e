import type { Db } from '../db/index.ts';
import * as sessions from '../data/sessions.ts';
import * as users from '../data/users.ts';
import { AppError, authFailed } from '../errors.ts';
import { RateLimiter } from '../rate-limiter.ts';
import type { AuthResponse, PublicUser } from '../../src/lib/protocol/api.ts';
import { dummyPasswordHash, hashPassword, isCommonPassword, verifyPassword } from './password.ts';
import { hashRefreshToken, newRefreshToken, type TokenService } from './tokens.ts';

/** Raised when a revoked refresh token is presented again: its whole family is revoked. */
export class RefreshReuseError extends AppError {
	constructor() {
		super('unauthorized', 'refresh token was already used; all sessions of this login were signed out');
		this.authFailure = 'refresh_reused';
	}
}

/** Register, login, refresh and logout: the account and session verbs behind /api/auth. */
export class AuthService {
	readonly #db: Db;
	readonly #tokens: TokenService;
	readonly #refreshTtlDays: number;
	/** Failed logins per lower-cased name: guessing one account's password is slow from any number of addresses. */
	readonly #failures: RateLimiter;

	constructor(
		db: Db,
		tokens: TokenService,
		options: { refreshTtlDays: number; loginFailuresPerName: number },
	) {
		this.#db = db;
		this.#tokens = tokens;
		this.#refreshTtlDays = options.refreshTtlDays;
		this.#failures = new RateLimiter(options.loginFailuresPerName, 15 * 60_000);
	}

	async register(name: string, password: string): Promise<AuthResponse> {
		if (isCommonPassword(password, name)) {
			throw new AppError(
				'validation_failed',
				'password is too common; choose a longer or less predictable one',
				[{ path: 'password', message: 'password is too common' }],
			);
		}
		const passwordHash = await hashPassword(password);
		let user: PublicUser;
		try {
			user = await users.create(this.#db, name, passwordHash);
		} catch (error) {
			if (error instanceof users.NameTakenError) throw new AppError('name_taken', error.message);
			throw error;
		}
		return this.#issue(user);
	}

	/** An unknown name and a wrong password get the same answer after the same amount of work. */
	async login(name: string, password: string): Promise<AuthResponse> {
		const key = name.toLowerCase();
		const wait = this.#failures.peek(key);
		if (wait > 0) {
			throw authFailed(
				'name_locked',
				'rate_limited',
				`too many failed sign-ins for this name; try again in ${Math.ceil(wait / 60_000)} min`,
			);
		}
		const record = await users.findByName(this.#db, name);
		const ok = await verifyPassword(password, record?.passwordHash ?? (await dummyPasswordHash()));
		if (!record || !ok) {
			this.#failures.take(key);
			throw authFailed('wrong_credentials', 'invalid_credentials', 'wrong name or password');
		}
		this.#failures.reset(key);
		return this.#issue({ id: record.id, name: record.name });
	}

	/**
	 * Rotates a refresh token. Presenting a token that was already rotated or revoked means it was
	 * copied: the whole family is revoked, so the thief's and the owner's sessions both end.
	 */
	async refresh(token: string): Promise<AuthResponse> {
		const outcome = await this.#db.transaction(async (tx) => {
			const row = await sessions.findForUpdate(tx, hashRefreshToken(token));
			if (!row) return { error: authFailed('refresh_unknown', 'unauthorized', 'refresh token unknown') };
			if (row.revoked) {
				await sessions.revokeFamily(tx, row.familyId);
				return { error: new RefreshReuseError() };
			}
			if (row.expired)
				return {
					error: authFailed('refresh_expired', 'unauthorized', 'refresh token expired; sign in again'),
				};
			const user = await users.findById(tx, row.userId);
			if (!user) return { error: authFailed('account_gone', 'unauthorized', 'account no longer exists') };
			const next = newRefreshToken();
			const inserted = await sessions.insert(tx, {
				familyId: row.familyId,
				userId: row.userId,
				tokenHash: next.hash,
				ttlDays: this.#refreshTtlDays,
			});
			await sessions.revoke(tx, row.id, inserted.id);
			return { user, refreshToken: next.token };
		});
		// The family revocation must commit even though the request fails, so the error is thrown here.
		if ('error' in outcome) throw outcome.error;
		return {
			user: outcome.user,
			accessToken: await this.#tokens.signAccess({ userId: outcome.user.id, name: outcome.user.name }),
			refreshToken: outcome.refreshToken,
		};
	}

	async logout(token: string): Promise<void> {
		await this.#db.transaction(async (tx) => {
			const row = await sessions.findForUpdate(tx, hashRefreshToken(token));
			if (row) await sessions.revoke(tx, row.id);
		});
	}

	async #issue(user: PublicUser): Promise<AuthResponse> {
		const refresh = newRefreshToken();
		await sessions.insert(this.#db, {
			userId: user.id,
			tokenHash: refresh.hash,
			ttlDays: this.#refreshTtlDays,
		});
		return {
			user,
			accessToken: await this.#tokens.signAccess({ userId: user.id, name: user.name }),
			refreshToken: refresh.token,
		};
	}
}

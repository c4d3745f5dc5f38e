import type { Db } from '../db/index.ts';
import * as documents from '../data/documents.ts';
import * as rooms from '../data/rooms.ts';
import * as sessions from '../data/sessions.ts';
import * as users from '../data/users.ts';
import type { EventBus } from '../events/bus.ts';
import { AppError, authFailed, notFound } from '../errors.ts';
import { RateLimiter } from '../rate-limiter.ts';
import type { AuthResponse, PublicUser, SessionInfo } from '#protocol/api.ts';
import { passwordProblem } from '#protocol/password-rules.ts';
import { dummyPasswordHash, hashPassword, verifyPassword } from './password.ts';
import { hashRefreshToken, newRefreshToken, type TokenService } from './tokens.ts';

/** Raised when a revoked refresh token is presented again: its whole family is revoked. */
export class RefreshReuseError extends AppError {
	constructor() {
		super('unauthorized', 'refresh token was already used; all sessions of this login were signed out');
		this.authFailure = 'refresh_reused';
	}
}

/**
 * A token rotated this recently, into one nobody has used, may be presented again: the answer to its rotation was
 * lost (a page reloaded or left while its refresh was in flight, a dropped connection), and the client still holds
 * it. Later, or once the successor was used, presenting it is theft and ends the session.
 */
const REFRESH_RETRY_SECONDS = 30;

/** Register, login, refresh and logout: the account and session verbs behind /api/auth. */
export class AuthService {
	readonly #db: Db;
	readonly #tokens: TokenService;
	readonly #refreshTtlDays: number;
	/** Failed logins per lower-cased name: guessing one account's password is slow from any number of addresses. */
	readonly #failures: RateLimiter;
	readonly #bus: EventBus;

	constructor(
		db: Db,
		tokens: TokenService,
		bus: EventBus,
		options: { refreshTtlDays: number; loginFailuresPerName: number; loginFailureWindowMinutes: number },
	) {
		this.#db = db;
		this.#tokens = tokens;
		this.#bus = bus;
		this.#refreshTtlDays = options.refreshTtlDays;
		this.#failures = new RateLimiter(
			options.loginFailuresPerName,
			options.loginFailureWindowMinutes * 60_000,
		);
	}

	async register(name: string, password: string, device: string | null = null): Promise<AuthResponse> {
		const problem = passwordProblem(password, name);
		if (problem) throw new AppError('validation_failed', problem, [{ path: 'password', message: problem }]);
		const passwordHash = await hashPassword(password);
		let user: PublicUser;
		try {
			user = await users.create(this.#db, name, passwordHash);
		} catch (error) {
			if (error instanceof users.NameTakenError) throw new AppError('name_taken', error.message);
			throw error;
		}
		return this.#issue(user, device);
	}

	/** An unknown name and a wrong password get the same answer after the same amount of work. */
	async login(name: string, password: string, device: string | null = null): Promise<AuthResponse> {
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
		return this.#issue({ id: record.id, name: record.name }, device);
	}

	/**
	 * Rotates a refresh token. Presenting a token that was already rotated or revoked means it was
	 * copied: the whole family is revoked, so the thief's and the owner's sessions both end.
	 */
	async refresh(token: string): Promise<AuthResponse> {
		const outcome = await this.#db.transaction(async (tx) => {
			const row = await sessions.findForUpdate(tx, hashRefreshToken(token), REFRESH_RETRY_SECONDS);
			if (!row) return { error: authFailed('refresh_unknown', 'unauthorized', 'refresh token unknown') };
			if (row.revoked && row.retry) {
				// The same client again: its successor never arrived. It replaces that one.
				await sessions.revokeSuccessor(tx, row.id);
			} else if (row.revoked) {
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
			return { user, refreshToken: next.token, sessionId: row.familyId };
		});
		// The family revocation must commit even though the request fails, so the error is thrown here.
		if ('error' in outcome) throw outcome.error;
		return {
			user: outcome.user,
			accessToken: await this.#tokens.signAccess({
				userId: outcome.user.id,
				name: outcome.user.name,
				sessionId: outcome.sessionId,
			}),
			refreshToken: outcome.refreshToken,
		};
	}

	/** Ends the session the refresh token belongs to: its tokens stop working and its sockets close on every node. */
	async logout(token: string): Promise<void> {
		const row = await this.#db.transaction(async (tx) => {
			const found = await sessions.findForUpdate(tx, hashRefreshToken(token));
			if (found) await sessions.revokeFamily(tx, found.familyId);
			return found;
		});
		if (row) {
			await this.#bus.publish({
				type: 'sessions-ended',
				userId: row.userId,
				sessionId: row.familyId,
				reason: 'signed-out',
			});
		}
	}

	/**
	 * Changes the password of the caller (who proves the current one). Every other session of the account ends on
	 * every node; the caller's own session (`sessionId`) goes on.
	 */
	async changePassword(
		userId: string,
		sessionId: string | undefined,
		current: string,
		next: string,
	): Promise<void> {
		const record = await users.findById(this.#db, userId);
		await this.#checkPassword(userId, current, 'currentPassword');
		if (!record) throw authFailed('account_gone', 'unauthorized', 'account no longer exists');
		const problem = passwordProblem(next, record.name);
		if (problem)
			throw new AppError('validation_failed', problem, [{ path: 'newPassword', message: problem }]);
		const hash = await hashPassword(next);
		await this.#db.transaction(async (tx) => {
			await users.setPasswordHash(tx, userId, hash);
			await sessions.revokeAllBut(tx, userId, sessionId ?? null);
		});
		await this.#bus.publish({
			type: 'sessions-ended',
			userId,
			exceptSessionId: sessionId,
			reason: 'password-changed',
		});
	}

	/**
	 * Deletes the caller's account (who proves the password): every session and socket ends at once, on every node.
	 * The messages stay in their rooms, shown as a deleted user's; groups it owned pass to another member, and
	 * groups with nobody else in them are deleted (docs/security.md, "Deleting an account").
	 */
	async deleteAccount(userId: string, password: string): Promise<void> {
		await this.#checkPassword(userId, password, 'password');
		const roomIds = await rooms.idsOf(this.#db, userId);
		const handed = await this.#db.transaction(async (tx) => {
			const result = await rooms.handOver(tx, userId);
			for (const roomId of result.deleted) await documents.remove(tx, `room:${roomId}`);
			await users.remove(tx, userId);
			return result;
		});
		await this.#bus.publish({ type: 'sessions-ended', userId, reason: 'account-deleted' });
		for (const roomId of roomIds) {
			await this.#bus.publish({
				type: 'membership',
				roomId,
				userId,
				role: null,
				by: userId,
				roomGone: handed.deleted.includes(roomId),
			});
		}
		for (const owner of handed.owners) {
			await this.#bus.publish({ type: 'membership', ...owner, role: 'owner', by: userId });
		}
	}

	/** A wrong password is a 403 with the field named (the caller is signed in; it is not a failed sign-in). */
	async #checkPassword(userId: string, password: string, field: string): Promise<void> {
		// A stolen access token must not become a fast way to guess the password: the sign-in limit applies.
		const key = `id:${userId}`;
		const wait = this.#failures.peek(key);
		if (wait > 0) {
			throw authFailed(
				'name_locked',
				'rate_limited',
				`too many wrong passwords; try again in ${Math.ceil(wait / 60_000)} min`,
			);
		}
		const stored = await users.passwordHashOf(this.#db, userId);
		const ok = await verifyPassword(password, stored ?? (await dummyPasswordHash()));
		if (!stored) throw authFailed('account_gone', 'unauthorized', 'account no longer exists');
		if (!ok) {
			this.#failures.take(key);
			throw new AppError('forbidden', 'the password is not correct', [
				{ path: field, message: 'the password is not correct' },
			]);
		}
	}

	/** The user's live sessions, the one asking (`currentId`) marked. */
	async listSessions(userId: string, currentId: string | undefined): Promise<SessionInfo[]> {
		const live = await sessions.listLive(this.#db, userId);
		return live.map((s) => ({ ...s, current: s.id === currentId }));
	}

	/**
	 * Ends the user's other sessions (`which: 'others'`), or one of them by id, on every node at once (their sockets
	 * close, their refresh tokens stop working). Returns how many ended.
	 */
	async endSessions(userId: string, currentId: string | undefined, which: string): Promise<number> {
		if (which === 'others') {
			const ended = await sessions.revokeAllBut(this.#db, userId, currentId ?? null);
			if (ended.length > 0)
				await this.#bus.publish({
					type: 'sessions-ended',
					userId,
					exceptSessionId: currentId,
					reason: 'signed-out',
				});
			return ended.length;
		}
		if (!(await sessions.revokeOwnFamily(this.#db, userId, which))) throw notFound('session');
		await this.#bus.publish({ type: 'sessions-ended', userId, sessionId: which, reason: 'signed-out' });
		return 1;
	}

	async #issue(user: PublicUser, device: string | null = null): Promise<AuthResponse> {
		const refresh = newRefreshToken();
		const { familyId } = await sessions.insert(this.#db, {
			userId: user.id,
			tokenHash: refresh.hash,
			ttlDays: this.#refreshTtlDays,
			device,
		});
		return {
			user,
			accessToken: await this.#tokens.signAccess({ userId: user.id, name: user.name, sessionId: familyId }),
			refreshToken: refresh.token,
		};
	}
}

import type { AuthResponse } from '../protocol/api.ts';
import type { sessionEndReasons } from '../protocol/user-channel.ts';
import { ApiError, accountApi, authApi, setTokenSource } from './api.ts';
import * as schemas from './schemas.ts';
import { forgetScreens } from './boot-screen.ts';
import { forgetDrafts } from './drafts.ts';
import * as store from './store.ts';

/** Refresh this long before the access token expires. */
const REFRESH_AHEAD_MS = 60_000;
/** After a failed refresh for want of network, try again this soon (or when the browser says it is online). */
const RETRY_MS = 15_000;
const LOCK_NAME = 'chat-refresh';
const CHANNEL_NAME = 'chat-session';

export type SessionStatus = 'booting' | 'signed-in' | 'signed-out';

/** What the sign-in page says after the server ended this session. */
const endedText: Record<(typeof sessionEndReasons)[number], string> = {
	'signed-out': 'You were signed out on another device.',
	'password-changed': 'Your password was changed.',
	'account-deleted': 'This account was deleted.',
};

const ENDED_UNSPECIFIED = 'Your session ended. Please sign in again.';
/** How long a bare `session-ended` close waits for the channel's message that names the reason. */
const UNSPECIFIED_END_WAIT_MS = 1_000;

type ChannelMessage = { type: 'signed-out'; userId: string } | { type: 'signed-in'; userId: string };

/** Hooks run on sign-out, before local data is deleted (close providers and databases). */
type SignOutHook = (userId: string) => Promise<void> | void;

/**
 * Who is signed in, and their access token.
 *
 * The access token lives only in this object's memory. The refresh token is the server's httpOnly cookie: this
 * tab never sees it, so it cannot leak through script. A refresh rotates the cookie and presenting an old one
 * revokes the whole session family, so refreshes are serialised: one in flight per tab (`#refreshing`) and,
 * through the Web Locks API, one at a time across tabs (each tab then sends the cookie its predecessor set).
 *
 * The last signed-in profile (id and name) is kept in IndexedDB: with it the app opens offline as that user,
 * and the token is fetched once the network is back.
 */
class Session {
	status = $state<SessionStatus>('booting');
	user = $state<schemas.Profile | null>(null);
	/** True while signed in from the cached profile without a token yet (offline start). */
	tokenless = $state(false);
	/** Why the session ended, when it ended without the user signing out here (one line for the sign-in page). */
	endedReason = $state<string | null>(null);

	#accessToken: string | null = null;
	#expiresAt = 0;
	#refreshing: Promise<string> | null = null;
	#timer: ReturnType<typeof setTimeout> | undefined;
	#booted: Promise<void> | null = null;
	#signOutHooks = new Set<SignOutHook>();
	#channel: BroadcastChannel | null = null;
	#signingOut: Promise<void> | null = null;
	/** This tab is signing out or deleting the account itself: the server's `session-ended` is expected. */
	#leaving = false;
	#endTimer: ReturnType<typeof setTimeout> | undefined;

	/** Restores the session: the cached profile at once, then a token through the cookie. Idempotent. */
	boot(): Promise<void> {
		this.#booted ??= this.#boot();
		return this.#booted;
	}

	async #boot(): Promise<void> {
		setTokenSource({
			token: () => this.accessToken(),
			refreshAfterUnauthorized: () => this.#refresh(true),
		});
		this.#listen();
		let cached: schemas.Profile | null = null;
		try {
			cached = await store.loadProfile();
		} catch (error) {
			console.warn('cannot read the cached profile', error);
		}
		if (!cached) {
			// Never signed in here (or signed out): no request, so a first visit logs no 401.
			this.status = 'signed-out';
			return;
		}
		this.user = cached;
		this.tokenless = true;
		this.status = 'signed-in';
		// Offline the request can only fail (and log): the `online` listener fetches the token instead.
		if (!navigator.onLine) return;
		try {
			await this.#refresh(true);
		} catch (error) {
			// Offline or server down: stay signed in from the cache; #refresh has scheduled a retry.
			if (!(error instanceof ApiError && error.isNetwork)) console.warn('session refresh failed', error);
		}
	}

	async register(name: string, password: string): Promise<void> {
		this.#accept(await authApi.register(name, password));
	}

	async login(name: string, password: string): Promise<void> {
		this.#accept(await authApi.login(name, password));
	}

	/** Registers cleanup to run at sign-out (before the account's local data is deleted). */
	onSignOut(hook: SignOutHook): () => void {
		this.#signOutHooks.add(hook);
		return () => this.#signOutHooks.delete(hook);
	}

	/**
	 * Signs out: revokes the refresh token, closes every provider and deletes all local data of this account
	 * (room documents, metadata, the cached profile), in this tab and, through the channel, in the others.
	 */
	async logout(): Promise<void> {
		const user = this.user;
		// The server answers the logout by ending this session on the socket too: that is not news to tell.
		this.#leaving = true;
		try {
			await authApi.logout();
		} catch (error) {
			// Offline: the cookie is still cleared by the next sign-in; the local data goes now regardless.
			console.warn('logout request failed', error);
		}
		if (user) this.#channel?.postMessage({ type: 'signed-out', userId: user.id } satisfies ChannelMessage);
		try {
			await this.#signOutLocally(true);
		} finally {
			this.#leaving = false;
		}
	}

	/**
	 * The server ended this session (signed out elsewhere, password changed, account deleted): sign out here
	 * too. Unsent messages stay on the device, for the same user's next sign-in.
	 */
	async end(reason: (typeof sessionEndReasons)[number] | 'unspecified'): Promise<void> {
		if (this.status !== 'signed-in' || this.#leaving || this.#signingOut) return;
		if (reason === 'unspecified') {
			// A document closed without saying why: the channel's message with the reason is normally already
			// here, or just behind. Wait for it a moment.
			this.#endTimer ??= setTimeout(() => {
				this.#endTimer = undefined;
				if (this.status === 'signed-in' && !this.#leaving && !this.#signingOut) {
					this.endedReason = ENDED_UNSPECIFIED;
					void this.#signOutLocally(false);
				}
			}, UNSPECIFIED_END_WAIT_MS);
			return;
		}
		clearTimeout(this.#endTimer);
		this.#endTimer = undefined;
		this.endedReason = endedText[reason];
		await this.#signOutLocally(false);
	}

	/** Changes the password; the server signs out every other session of the account. */
	async changePassword(currentPassword: string, newPassword: string): Promise<void> {
		await accountApi.changePassword(currentPassword, newPassword);
	}

	/**
	 * Deletes the account (the server keeps its messages, shown as "Deleted user") and everything of it on this
	 * device: nothing left to send.
	 */
	async deleteAccount(password: string): Promise<void> {
		const user = this.user;
		this.#leaving = true;
		try {
			await accountApi.deleteAccount(password);
			this.endedReason = endedText['account-deleted'];
			if (user) this.#channel?.postMessage({ type: 'signed-out', userId: user.id } satisfies ChannelMessage);
			await this.#signOutLocally(true);
		} finally {
			this.#leaving = false;
		}
	}

	/** A valid access token, refreshed first when it expires within a minute. Throws when there is none. */
	async accessToken(): Promise<string> {
		if (this.#accessToken && this.#expiresAt - Date.now() > REFRESH_AHEAD_MS) return this.#accessToken;
		return this.#refresh(false);
	}

	/**
	 * Gets a new token pair through the cookie, at most once at a time in this tab and across tabs.
	 * `force` refreshes even if another tab just did (used after a 401).
	 */
	#refresh(force: boolean): Promise<string> {
		this.#refreshing ??= this.#refreshLocked(force).finally(() => {
			this.#refreshing = null;
		});
		return this.#refreshing;
	}

	async #refreshLocked(force: boolean): Promise<string> {
		const run = async () => {
			// Another call may have refreshed while this one waited for the lock.
			if (!force && this.#accessToken && this.#expiresAt - Date.now() > REFRESH_AHEAD_MS) {
				return this.#accessToken;
			}
			try {
				const answer = await authApi.refresh();
				this.#accept(answer);
				return answer.accessToken;
			} catch (error) {
				if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
					// The session is over (expired, revoked, or stolen and revoked): sign in again. Local data is
					// kept: the same user signing in again finds their unsent messages.
					await this.#signOutLocally(false);
				} else {
					this.#schedule(RETRY_MS);
				}
				throw error;
			}
		};
		if (typeof navigator !== 'undefined' && navigator.locks) {
			return navigator.locks.request(LOCK_NAME, run);
		}
		return run();
	}

	#accept(answer: AuthResponse): void {
		const claims = decodeClaims(answer.accessToken);
		const previous = this.user?.id;
		this.#accessToken = answer.accessToken;
		this.#expiresAt = claims ? claims.exp * 1000 : Date.now() + 5 * 60_000;
		this.#schedule(Math.max(5_000, this.#expiresAt - Date.now() - REFRESH_AHEAD_MS));
		this.user = { id: answer.user.id, name: answer.user.name };
		this.tokenless = false;
		this.status = 'signed-in';
		this.endedReason = null;
		void store
			.saveProfile(this.user)
			.catch((error: unknown) => console.warn('cannot cache the profile', error));
		if (previous !== answer.user.id) {
			this.#channel?.postMessage({ type: 'signed-in', userId: answer.user.id } satisfies ChannelMessage);
		}
	}

	#schedule(delayMs: number): void {
		clearTimeout(this.#timer);
		this.#timer = setTimeout(() => {
			void this.#refresh(true).catch(() => {
				// Reported and rescheduled inside #refreshLocked.
			});
		}, delayMs);
	}

	/**
	 * One sign-out at a time: the server's notice and the user's own action may race. A wipe asked for while a
	 * sign-out that keeps the data is under way still happens, after it.
	 */
	async #signOutLocally(wipe: boolean): Promise<void> {
		const user = this.user;
		const running = this.#signingOut;
		if (!running) {
			this.#signingOut = this.#doSignOut(wipe).finally(() => {
				this.#signingOut = null;
			});
			return this.#signingOut;
		}
		await running;
		if (wipe && user) await wipeLocalData(user.id);
	}

	async #doSignOut(wipe: boolean): Promise<void> {
		const user = this.user;
		clearTimeout(this.#timer);
		this.#accessToken = null;
		this.#expiresAt = 0;
		this.tokenless = false;
		if (user) {
			for (const hook of this.#signOutHooks) {
				try {
					await hook(user.id);
				} catch (error) {
					console.warn('sign-out cleanup failed', error);
				}
			}
		}
		if (wipe && user) await wipeLocalData(user.id);
		this.user = null;
		this.status = 'signed-out';
	}

	#listen(): void {
		if (typeof window === 'undefined') return;
		window.addEventListener('online', () => {
			if (this.status === 'signed-in' && (this.tokenless || !this.#accessToken)) {
				void this.#refresh(true).catch(() => {
					// Rescheduled inside #refreshLocked.
				});
			}
		});
		if (typeof BroadcastChannel === 'undefined') return;
		this.#channel = new BroadcastChannel(CHANNEL_NAME);
		this.#channel.onmessage = (event: MessageEvent<ChannelMessage>) => {
			const message = event.data;
			if (message?.type === 'signed-out' && message.userId === this.user?.id) {
				// Another tab signed out and is deleting the data: let go of it here.
				void this.#signOutLocally(false);
			} else if (message?.type === 'signed-in' && this.user && message.userId !== this.user.id) {
				// Another account signed in elsewhere: this tab's cookie is theirs now; start over.
				location.reload();
			}
		};
	}
}

/** Deletes the account's data on this device and the cached profile (failures are reported, not thrown). */
async function wipeLocalData(userId: string): Promise<void> {
	try {
		forgetScreens();
		forgetDrafts(userId);
		await store.clearProfile();
		await store.wipeAccount(userId, []);
	} catch (error) {
		console.warn('could not delete all local data', error);
	} finally {
		// Once more at the end: the user is signed in until the databases are gone, so a picture of the page kept
		// meanwhile (followScreens keeps one a moment after the page changed) would outlive the sign-out. The caller
		// marks the session signed out in this same task, before anything could keep another.
		forgetScreens();
	}
}

/** The `exp` claim of a JWT, read without verifying it: the client only schedules by it. */
function decodeClaims(jwt: string): { exp: number } | null {
	try {
		const payload = jwt.split('.')[1] ?? '';
		const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
		const parsed = schemas.accessClaims.safeParse(JSON.parse(json));
		return parsed.success ? parsed.data : null;
	} catch {
		// Not a JWT we can read: fall back to a short fixed lifetime (see #accept).
		return null;
	}
}

/** The one session of this tab. */
export const session = new Session();

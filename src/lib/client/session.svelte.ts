import { ApiError, authApi, setTokenSource } from './api.ts';
import * as schemas from './schemas.ts';
import * as store from './store.ts';

/** Refresh this long before the access token expires. */
const REFRESH_AHEAD_MS = 60_000;
/** After a failed refresh for want of network, try again this soon (or when the browser says it is online). */
const RETRY_MS = 15_000;
const LOCK_NAME = 'chat-refresh';
const CHANNEL_NAME = 'chat-session';

export type SessionStatus = 'booting' | 'signed-in' | 'signed-out';

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

	#accessToken: string | null = null;
	#expiresAt = 0;
	#refreshing: Promise<string> | null = null;
	#timer: ReturnType<typeof setTimeout> | undefined;
	#booted: Promise<void> | null = null;
	#signOutHooks = new Set<SignOutHook>();
	#channel: BroadcastChannel | null = null;

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
		try {
			await authApi.logout();
		} catch (error) {
			// Offline: the cookie is still cleared by the next sign-in; the local data goes now regardless.
			console.warn('logout request failed', error);
		}
		if (user) this.#channel?.postMessage({ type: 'signed-out', userId: user.id } satisfies ChannelMessage);
		await this.#signOutLocally(true);
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

	#accept(answer: schemas.AuthResponseShape): void {
		const claims = decodeClaims(answer.accessToken);
		const previous = this.user?.id;
		this.#accessToken = answer.accessToken;
		this.#expiresAt = claims ? claims.exp * 1000 : Date.now() + 5 * 60_000;
		this.#schedule(Math.max(5_000, this.#expiresAt - Date.now() - REFRESH_AHEAD_MS));
		this.user = { id: answer.user.id, name: answer.user.name };
		this.tokenless = false;
		this.status = 'signed-in';
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

	async #signOutLocally(wipe: boolean): Promise<void> {
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
		if (wipe && user) {
			try {
				await store.clearProfile();
				await store.wipeAccount(user.id, []);
			} catch (error) {
				console.warn('could not delete all local data', error);
			}
		}
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

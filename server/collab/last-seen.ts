import type { Logger } from 'pino';
import * as users from '../data/users.ts';
import type { Db } from '../db/index.ts';

/** How stale a user's "last seen" may be (it is shown as "last seen 5 minutes ago"). */
const LAST_SEEN_RESOLUTION_MS = 15_000;
/** Users seen within this window are written together, in one statement. */
const FLUSH_DELAY_MS = 250;
/**
 * Above this many users remembered, those written longer than the resolution ago are forgotten, at most once per
 * resolution: within one, all of them may be recent, and a scan per login of a reconnect storm would be quadratic.
 */
const REMEMBERED = 10_000;

/**
 * "Last seen": when a user last had the app (their user channel) or a room open. It is shown to the minute, so
 * one write per user per LAST_SEEN_RESOLUTION_MS on a node is enough, and the users seen within FLUSH_DELAY_MS are
 * written in one statement: a reconnect storm of thousands of users is a handful of writes, and no login waits for
 * one. A write that fails is logged and not retried (the next login writes it again); being seen never fails a
 * login.
 */
export class LastSeen {
	readonly #db: Db;
	readonly #log: Logger;
	/** When this node last wrote (or queued) each user's "last seen". */
	readonly #written = new Map<string, number>();
	#pending = new Set<string>();
	#timer: NodeJS.Timeout | undefined;
	#flushing: Promise<void> = Promise.resolve();
	#prunedAt = 0;

	constructor(db: Db, log: Logger) {
		this.#db = db;
		this.#log = log;
	}

	/** The user is here now. */
	seen(userId: string): void {
		const now = Date.now();
		if (now - (this.#written.get(userId) ?? 0) < LAST_SEEN_RESOLUTION_MS) return;
		this.#written.set(userId, now);
		if (this.#written.size > REMEMBERED && now - this.#prunedAt >= LAST_SEEN_RESOLUTION_MS) {
			this.#prunedAt = now;
			for (const [id, at] of this.#written) if (now - at >= LAST_SEEN_RESOLUTION_MS) this.#written.delete(id);
		}
		this.#pending.add(userId);
		this.#timer ??= setTimeout(() => void this.flush(), FLUSH_DELAY_MS);
	}

	/** Writes what is queued now (shutdown, tests); resolves once it and every earlier write are done. */
	flush(): Promise<void> {
		clearTimeout(this.#timer);
		this.#timer = undefined;
		const ids = [...this.#pending];
		this.#pending = new Set();
		const previous = this.#flushing;
		this.#flushing = (async () => {
			await previous;
			if (ids.length === 0) return;
			await users.touchLastSeen(this.#db, ids).catch((error: unknown) => {
				this.#log.warn({ err: error, users: ids.length }, 'could not record last seen');
			});
		})();
		return this.#flushing;
	}
}

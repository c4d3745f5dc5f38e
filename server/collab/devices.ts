import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** How often a node renews its users' entries, and how long an entry outlives its last renewal (a crashed node). */
const RENEW_MS = 15_000;
const ENTRY_TTL_MS = 45_000;
/**
 * A user whose last device on this node left still counts this long: a reload, or a connection that dropped and
 * came straight back, does not show them offline (and online again) to everyone who shares a room with them.
 */
export const RECONNECT_GRACE_MS = 3_000;

/**
 * Which users have a device connected (an open user channel) anywhere in the cluster: Web Push goes only to users
 * with none. Each node counts its own; with Redis each node also keeps, per user, a sorted-set entry scored with
 * when it expires, renewed while the user stays connected there, so a node that crashed stops counting within 45 s.
 */
export class Devices {
	readonly #local = new Map<string, number>();
	/** Users whose last device here left within RECONNECT_GRACE_MS: they still count, until the timer says. */
	readonly #leaving = new Map<
		string,
		{ timer: ReturnType<typeof setTimeout>; gone: (gone: boolean) => void }
	>();
	readonly #redis: Redis | undefined;
	readonly #prefix: string;
	readonly #node: string;
	readonly #log: Logger;
	readonly #timer: ReturnType<typeof setInterval> | undefined;

	constructor(options: { redis?: Redis; prefix: string; node: string; log: Logger }) {
		this.#redis = options.redis;
		this.#prefix = options.prefix;
		this.#node = options.node;
		this.#log = options.log.child({ component: 'devices' });
		if (this.#redis)
			this.#timer = setInterval(
				() => void this.#renew([...this.#local.keys(), ...this.#leaving.keys()]),
				RENEW_MS,
			).unref();
	}

	/**
	 * Counts a device; true when it is the user's first on this node (once Redis knows of it too). A device back
	 * within the grace after the last one left is not a first: nobody was told they had gone.
	 */
	async connected(userId: string): Promise<boolean> {
		const leaving = this.#leaving.get(userId);
		if (leaving) {
			clearTimeout(leaving.timer);
			this.#leaving.delete(userId);
			leaving.gone(false);
			this.#local.set(userId, 1);
			return false;
		}
		const count = (this.#local.get(userId) ?? 0) + 1;
		this.#local.set(userId, count);
		if (count === 1) await this.#renew([userId]);
		return count === 1;
	}

	/**
	 * Counts a device gone. Resolves true when it was the user's last on this node and none came back within
	 * RECONNECT_GRACE_MS (once Redis knows they left too), false otherwise.
	 */
	disconnected(userId: string): Promise<boolean> {
		const count = (this.#local.get(userId) ?? 1) - 1;
		if (count > 0) {
			this.#local.set(userId, count);
			return Promise.resolve(false);
		}
		this.#local.delete(userId);
		// Already leaving (a second goodbye without a new device): the first one announces.
		if (this.#leaving.has(userId)) return Promise.resolve(false);
		return new Promise((resolve) => {
			const timer = setTimeout(() => {
				this.#leaving.delete(userId);
				void this.#forget([userId]).then(() => resolve(true));
			}, RECONNECT_GRACE_MS);
			timer.unref();
			this.#leaving.set(userId, { timer, gone: resolve });
		});
	}

	async #forget(userIds: string[]): Promise<void> {
		if (!this.#redis || userIds.length === 0) return;
		const pipeline = this.#redis.pipeline();
		for (const userId of userIds) pipeline.zrem(this.#key(userId), this.#node);
		await pipeline.exec().catch((error: unknown) => {
			// The entries expire by themselves within ENTRY_TTL_MS.
			this.#log.debug({ err: error }, 'device entries not removed');
		});
	}

	/**
	 * Which of `userIds` have a device connected anywhere (one Redis round trip for all of them). When Redis cannot
	 * answer, only this node's count: a user connected elsewhere reads as offline (see `anyConnected`).
	 */
	async onlineOf(userIds: string[]): Promise<Set<string>> {
		const online = new Set(userIds.filter((id) => (this.#local.get(id) ?? 0) > 0 || this.#leaving.has(id)));
		const rest = userIds.filter((id) => !online.has(id));
		if (!this.#redis || rest.length === 0) return online;
		try {
			const pipeline = this.#redis.pipeline();
			for (const id of rest) pipeline.zcount(this.#key(id), Date.now(), '+inf');
			const answers = (await pipeline.exec()) ?? [];
			rest.forEach((id, i) => {
				if (Number(answers[i]?.[1] ?? 0) > 0) online.add(id);
			});
		} catch (error) {
			this.#log.debug({ err: error }, 'cannot ask redis who is online');
		}
		return online;
	}

	/**
	 * Whether the user has a device connected to any node. When Redis cannot answer this says no: a push to someone
	 * who is online after all is better than a mention nobody hears of.
	 */
	async anyConnected(userId: string): Promise<boolean> {
		return (await this.onlineOf([userId])).has(userId);
	}

	close(): void {
		clearInterval(this.#timer);
		const users = [...this.#local.keys(), ...this.#leaving.keys()];
		for (const { timer, gone } of this.#leaving.values()) {
			clearTimeout(timer);
			gone(false);
		}
		this.#leaving.clear();
		this.#local.clear();
		// Shutting down: what is not removed now expires by itself.
		void this.#forget(users);
	}

	#key(userId: string): string {
		return `${this.#prefix}:devices:${userId}`;
	}

	async #renew(userIds: string[]): Promise<void> {
		if (!this.#redis || userIds.length === 0) return;
		const expires = Date.now() + ENTRY_TTL_MS;
		const pipeline = this.#redis.pipeline();
		for (const userId of userIds) {
			pipeline.zadd(this.#key(userId), expires, this.#node);
			pipeline.zremrangebyscore(this.#key(userId), '-inf', Date.now());
			pipeline.pexpire(this.#key(userId), ENTRY_TTL_MS);
		}
		try {
			await pipeline.exec();
		} catch (error) {
			this.#log.debug({ err: error }, 'device entries not renewed');
		}
	}
}

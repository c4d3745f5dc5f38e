import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** How often a node renews its users' entries, and how long an entry outlives its last renewal (a crashed node). */
const RENEW_MS = 15_000;
const ENTRY_TTL_MS = 45_000;

/**
 * Which users have a device connected (an open user channel) anywhere in the cluster: Web Push goes only to users
 * with none. Each node counts its own; with Redis each node also keeps, per user, a sorted-set entry scored with
 * when it expires, renewed while the user stays connected there, so a node that crashed stops counting within 45 s.
 */
export class Devices {
	readonly #local = new Map<string, number>();
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
			this.#timer = setInterval(() => void this.#renew([...this.#local.keys()]), RENEW_MS).unref();
	}

	/** Counts a device; true when it is the user's first on this node (once Redis knows of it too). */
	async connected(userId: string): Promise<boolean> {
		const count = (this.#local.get(userId) ?? 0) + 1;
		this.#local.set(userId, count);
		if (count === 1) await this.#renew([userId]);
		return count === 1;
	}

	/** Counts a device gone; true when it was the user's last on this node (once Redis knows that too). */
	async disconnected(userId: string): Promise<boolean> {
		const count = (this.#local.get(userId) ?? 1) - 1;
		if (count > 0) {
			this.#local.set(userId, count);
			return false;
		}
		this.#local.delete(userId);
		await this.#redis?.zrem(this.#key(userId), this.#node).catch((error: unknown) => {
			// The entry expires by itself within ENTRY_TTL_MS.
			this.#log.debug({ err: error }, 'device entry not removed');
		});
		return true;
	}

	/**
	 * Which of `userIds` have a device connected anywhere (one Redis round trip for all of them). When Redis cannot
	 * answer, only this node's count: a user connected elsewhere reads as offline (see `anyConnected`).
	 */
	async onlineOf(userIds: string[]): Promise<Set<string>> {
		const online = new Set(userIds.filter((id) => (this.#local.get(id) ?? 0) > 0));
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
		const users = [...this.#local.keys()];
		this.#local.clear();
		if (!this.#redis || users.length === 0) return;
		const pipeline = this.#redis.pipeline();
		for (const userId of users) pipeline.zrem(this.#key(userId), this.#node);
		pipeline.exec().catch(() => {
			// Shutting down: the entries expire by themselves.
		});
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

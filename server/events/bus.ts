import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import { role } from '#protocol/api.ts';
import { uuid } from '#protocol/ids.ts';
import { notifyLevel, sessionEndReasons } from '#protocol/user-channel.ts';

/**
 * What one node tells every node (itself included) about changes around the rooms: the source of continuous
 * authorization and of the user channels. Each event is published after the change it reports has committed to
 * Postgres, so a node that reacts by reading the database reads the new state. A field a node does not know (from
 * a newer version) is dropped, not the event: nodes of two versions share Redis during a rolling upgrade.
 */
export const clusterEvent = z.discriminatedUnion('type', [
	/** A membership was added, changed (role) or ended (role null: removed or left; `roomGone`: room deleted). */
	z.object({
		type: z.literal('membership'),
		roomId: uuid,
		userId: uuid,
		role: role.nullable(),
		by: uuid.nullable(),
		roomGone: z.boolean().optional(),
	}),
	/** A group's name or topic changed (its members' room lists show the new ones). */
	z.object({ type: z.literal('room-details'), roomId: uuid }),
	/** A user's first device connected to a node, or their last one there left (the others ask who is online). */
	z.object({ type: z.literal('presence'), userId: uuid }),
	/** A member changed how the room notifies them. */
	z.object({ type: z.literal('notify-level'), roomId: uuid, userId: uuid, level: notifyLevel }),
	/** New events in a room, durable. `mentions`: the ids of the members each message @mentions. */
	z.object({
		type: z.literal('activity'),
		roomId: uuid,
		writer: z.object({ id: uuid, name: z.string() }),
		messages: z.array(
			z.object({
				clientMsgId: uuid,
				content: z.string(),
				createdAt: z.string(),
				receivedAt: z.string(),
				mentions: z.array(uuid),
			}),
		),
		/** Other kinds (edits, deletes, reactions): the room's summary may change (a deleted last message). */
		others: z.number().int().min(0),
	}),
	/**
	 * A member's read position in a room moved: their unread count changes on every device. The position itself
	 * (`at`, `clientMsgId`; absent from nodes before it was sent) lets a node that knows the room's newest message
	 * say "nothing unread" without asking the database.
	 */
	z.object({
		type: z.literal('read'),
		roomId: uuid,
		userId: uuid,
		at: z.string().optional(),
		clientMsgId: uuid.optional(),
	}),
	/**
	 * Sessions ended: one (`sessionId`), or all but one (`exceptSessionId`), or all of the user's. Their sockets
	 * close on every node and their tokens stop opening new ones.
	 */
	z.object({
		type: z.literal('sessions-ended'),
		userId: uuid,
		sessionId: uuid.optional(),
		exceptSessionId: uuid.optional(),
		reason: z.enum(sessionEndReasons),
	}),
]);
export type ClusterEvent = z.infer<typeof clusterEvent>;

export type ClusterListener = (event: ClusterEvent) => void;

/**
 * Delivers cluster events to every node. A node may miss events while its link is down (Redis pub/sub keeps
 * nothing): `onResync` listeners then rebuild what they derive from events from the database.
 */
export interface EventBus {
	publish(event: ClusterEvent): Promise<void>;
	subscribe(listener: ClusterListener): () => void;
	onResync(listener: () => void): () => void;
	close(): Promise<void>;
}

/** One node: events go straight to this process's listeners. */
export class LocalBus implements EventBus {
	readonly #listeners = new Set<ClusterListener>();
	readonly #log: Logger;

	constructor(log: Logger) {
		this.#log = log.child({ component: 'events' });
	}

	async publish(event: ClusterEvent): Promise<void> {
		deliver(this.#listeners, event, this.#log);
	}

	subscribe(listener: ClusterListener): () => void {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
	}

	onResync(): () => void {
		// Nothing is ever missed in one process.
		return () => undefined;
	}

	async close(): Promise<void> {
		this.#listeners.clear();
	}
}

function deliver(listeners: Iterable<ClusterListener>, event: ClusterEvent, log: Logger): void {
	for (const listener of listeners) {
		try {
			listener(event);
		} catch (error) {
			log.error({ err: error, type: event.type }, 'cluster event listener failed');
		}
	}
}

/**
 * Several nodes: events travel through one Redis pub/sub channel. A node delivers its own events at once (it does
 * not wait for its own echo, which it ignores) and everyone else's as they arrive. When the subscriber comes back
 * after losing Redis, `onResync` listeners run: whatever was published meanwhile is gone.
 */
export class RedisBus implements EventBus {
	readonly #listeners = new Set<ClusterListener>();
	readonly #resync = new Set<() => void>();
	readonly #pub: Redis;
	readonly #sub: Redis;
	readonly #channel: string;
	readonly #node = randomUUID();
	readonly #log: Logger;
	#connectedBefore = false;

	constructor(options: { url: string; prefix: string; log: Logger }) {
		this.#log = options.log.child({ component: 'events' });
		this.#channel = `${options.prefix}:events`;
		this.#pub = new Redis(options.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
		this.#sub = new Redis(options.url, { maxRetriesPerRequest: null });
		// ioredis reconnects by itself; /readyz reports the outage. Logged, never thrown.
		this.#pub.on('error', (error: Error) =>
			this.#log.debug({ err: error }, 'redis error (events publisher)'),
		);
		this.#sub.on('error', (error: Error) =>
			this.#log.debug({ err: error }, 'redis error (events subscriber)'),
		);
		this.#sub.on('message', (_channel: string, raw: string) => this.#receive(raw));
		this.#sub.on('ready', () => {
			if (!this.#connectedBefore) {
				this.#connectedBefore = true;
				return;
			}
			// ioredis re-subscribes right after 'ready'; a PING behind the subscription answers once it is live.
			void this.#sub
				.ping()
				.then(() => {
					this.#log.info('events channel is back; resynchronising from the database');
					for (const listener of this.#resync) listener();
				})
				.catch((error: unknown) => this.#log.warn({ err: error }, 'events resync failed'));
		});
	}

	/** Resolves once the subscription is live (or after `timeoutMs`, when Redis is away: it joins later). */
	async start(timeoutMs = 1_500): Promise<void> {
		const subscribed = this.#sub.subscribe(this.#channel).catch((error: unknown) => {
			this.#log.warn({ err: error }, 'events channel not subscribed yet');
		});
		await Promise.race([subscribed, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
	}

	async publish(event: ClusterEvent): Promise<void> {
		deliver(this.#listeners, event, this.#log);
		try {
			await this.#pub.publish(this.#channel, JSON.stringify({ node: this.#node, event }));
		} catch (error) {
			// The change itself is committed, and every rule also holds from the database: a node that misses this
			// event still refuses the writes (the append checks membership) and catches up when Redis returns.
			this.#log.warn({ err: error, type: event.type }, 'cluster event not published: redis unavailable');
		}
	}

	subscribe(listener: ClusterListener): () => void {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
	}

	onResync(listener: () => void): () => void {
		this.#resync.add(listener);
		return () => this.#resync.delete(listener);
	}

	#receive(raw: string): void {
		let parsed: unknown;
		try {
			parsed = JSON.parse(raw);
		} catch {
			this.#log.warn('cluster event dropped: not JSON');
			return;
		}
		const envelope = z.object({ node: z.string(), event: clusterEvent }).safeParse(parsed);
		if (!envelope.success) {
			this.#log.warn({ issues: envelope.error.issues.slice(0, 3) }, 'cluster event dropped: unknown shape');
			return;
		}
		if (envelope.data.node === this.#node) return;
		deliver(this.#listeners, envelope.data.event, this.#log);
	}

	async close(): Promise<void> {
		this.#listeners.clear();
		this.#resync.clear();
		this.#sub.disconnect();
		this.#pub.disconnect();
	}
}

import { Redis as RedisExtension } from '@hocuspocus/extension-redis';
import type { afterLoadDocumentPayload } from '@hocuspocus/server';
import { Redis as IORedis } from 'ioredis';
import type { Logger } from 'pino';

/** How long a room's load waits for Redis before it opens without it (see afterLoadDocument). */
const LOAD_WAIT_MS = 1_500;

/**
 * Cross-node relay through Redis (@hocuspocus/extension-redis), made to survive a Redis outage:
 *
 * - a room opens without waiting for Redis when Redis is away (the extension would block the load until its
 *   subscription answers); the subscription completes when Redis returns;
 * - no Redis lock around stores: compaction is serialised by a Postgres advisory lock, and a lock in Redis
 *   would hold every unload until Redis returned;
 * - when the subscriber reconnects, `onReconnected` runs once the old subscriptions are live again. Redis
 *   pub/sub keeps nothing for a subscriber that was away, so the caller catches every open room up from the
 *   durable log, which holds every update any node accepted.
 */
export class ClusterRelay extends RedisExtension {
	readonly #log: Logger;

	constructor(options: {
		url: string;
		prefix: string;
		identifier: string;
		log: Logger;
		onReconnected: () => Promise<void>;
	}) {
		const log = options.log.child({ component: 'redis' });
		super({
			createClient: () => {
				const client = new IORedis(options.url, { maxRetriesPerRequest: null });
				// ioredis reconnects by itself; /readyz reports the outage. Logged, never thrown.
				client.on('error', (error: Error) => log.debug({ err: error }, 'redis error'));
				return client;
			},
			prefix: options.prefix,
			identifier: options.identifier,
		});
		this.#log = log;
		let connectedBefore = false;
		let lostAt = 0;
		this.sub.on('close', () => {
			if (connectedBefore && lostAt === 0) {
				lostAt = Date.now();
				this.#log.warn('redis connection lost: rooms keep serving this node only until it returns');
			}
		});
		this.sub.on('ready', () => {
			if (!connectedBefore) {
				connectedBefore = true;
				return;
			}
			// ioredis sends the re-subscriptions right after 'ready'; a PING behind them answers once they are live.
			setImmediate(() => {
				void this.sub
					.ping()
					.then(() => options.onReconnected())
					.then(() => {
						this.#log.info(
							{ outageMs: lostAt ? Date.now() - lostAt : undefined },
							'redis is back; rooms caught up',
						);
						lostAt = 0;
					})
					.catch((error: unknown) =>
						this.#log.error({ err: error }, 'catching up after redis returned failed'),
					);
			});
		});
	}

	override async afterLoadDocument(payload: afterLoadDocumentPayload): Promise<void> {
		const load = super.afterLoadDocument(payload);
		const inTime = await Promise.race([
			load.then(() => true),
			new Promise<false>((resolve) => setTimeout(() => resolve(false), LOAD_WAIT_MS).unref()),
		]);
		if (!inTime) {
			load.catch((error: unknown) =>
				this.#log.warn(
					{ err: error, documentName: payload.documentName },
					'room could not subscribe to redis',
				),
			);
			this.#log.warn(
				{ documentName: payload.documentName },
				'room opened without redis; it joins the other nodes when redis returns',
			);
		}
	}

	override async onStoreDocument(): Promise<void> {
		// No Redis lock: see the class comment.
	}
}

import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { AuthService } from './auth/service.ts';
import { TokenService } from './auth/tokens.ts';
import { Collab } from './collab/index.ts';
import type { judgeUpdate } from './collab/validation.ts';
import type { Config } from './config.ts';
import { openDb, type Db } from './db/index.ts';
import { migrate } from './db/migrate.ts';
import { buildHttp, type HttpRoute } from './http/app.ts';
import { Redis } from 'ioredis';
import { RoomService } from './rooms.ts';
import * as sessions from './data/sessions.ts';
import { LocalBus, RedisBus, type EventBus } from './events/bus.ts';
import { Metrics } from './metrics.ts';
import { PushService } from './push/service.ts';
import { startTracing } from './tracing.ts';

export interface App {
	readonly db: Db;
	readonly collab: Collab;
	/** Web Push: `push.sendToUser(userId, payload)` reaches a user's browsers while none of their devices is connected. */
	readonly push: PushService;
	/** The bound address once listening, e.g. to learn the port when PORT=0. */
	readonly url: string;
	/** Every HTTP route the server answers (tests walk them all). */
	readonly routes: readonly HttpRoute[];
	/** Stops taking requests, flushes every document, closes the database. Idempotent. */
	stop(): Promise<void>;
}

/**
 * The composition root: opens the database, applies migrations, wires auth, rooms, HTTP and
 * collaboration onto one HTTP server, and listens.
 */
export async function startApp(
	config: Config,
	log: Logger,
	/** Only benchmarks pass these (bench/bench-server.ts). */
	options: { judge?: typeof judgeUpdate; relayBeforeCommit?: boolean } = {},
): Promise<App> {
	const stopTracing = await startTracing(
		{
			endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
			tracesEndpoint: config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
			serviceName: config.OTEL_SERVICE_NAME,
		},
		log,
	);
	const db = await openDb(config, log).catch(async (error: unknown) => {
		await stopTracing();
		throw error;
	});
	let redis: Redis | undefined;
	let bus: EventBus | undefined;
	try {
		const applied = await migrate(db);
		if (applied.length > 0) log.info({ applied }, 'migrations applied');

		const tokens = new TokenService(config);
		tokens.checkSessionsWith((sessionId, userId) => sessions.isLive(db, sessionId, userId));
		if (config.REDIS_URL) {
			const redisBus = new RedisBus({ url: config.REDIS_URL, prefix: config.REDIS_PREFIX, log });
			bus = redisBus;
			await redisBus.start();
		} else {
			bus = new LocalBus(log);
		}
		const auth = new AuthService(db, tokens, bus, {
			refreshTtlDays: config.REFRESH_TOKEN_TTL_DAYS,
			loginFailuresPerName: config.LOGIN_FAILURES_PER_NAME,
		});
		const rooms = new RoomService(db, bus);
		const push = await new PushService(db, log, {
			subject: config.VAPID_SUBJECT,
			keys:
				config.VAPID_PUBLIC_KEY && config.VAPID_PRIVATE_KEY
					? { publicKey: config.VAPID_PUBLIC_KEY, privateKey: config.VAPID_PRIVATE_KEY }
					: undefined,
		}).init();
		if (config.REDIS_URL) {
			redis = new Redis(config.REDIS_URL, {
				lazyConnect: true,
				maxRetriesPerRequest: 1,
				enableOfflineQueue: false,
			});
			// Log when Redis goes away and when it is back, not every reconnect attempt in between.
			let redisUp = true;
			redis.on('error', (error) => {
				if (redisUp) log.warn({ err: error }, 'redis unavailable; retrying');
				redisUp = false;
			});
			redis.on('ready', () => {
				if (!redisUp) log.info('redis available again');
				redisUp = true;
			});
			await redis
				.connect()
				.catch((error: unknown) => log.warn({ err: error }, 'redis not reachable at boot'));
		}
		const metrics = new Metrics();
		const collab = new Collab({ db, tokens, bus, redis, push, log, config, metrics, ...options });
		metrics.observe({
			connections: () => collab.hocuspocus.getConnectionsCount(),
			documents: () => collab.hocuspocus.getDocumentsCount(),
			redisUp: redis ? () => (redis as Redis).status === 'ready' : undefined,
		});
		const routes: HttpRoute[] = [];
		const http = await buildHttp(
			{
				config,
				db,
				auth,
				tokens,
				rooms,
				metrics,
				push,
				redisReady: redis ? async () => void (await (redis as Redis).ping()) : undefined,
			},
			log,
			(route) => routes.push(route),
		);
		collab.attach(http.server as Server);
		const url = await http.listen({ port: config.PORT, host: config.HOST });
		log.info({ url, database: db.kind, redis: Boolean(redis) }, 'server listening');

		let stopping: Promise<void> | undefined;
		return {
			db,
			collab,
			push,
			url,
			routes,
			stop: () =>
				(stopping ??= (async () => {
					log.info('shutting down: closing connections and flushing documents');
					const closed = http.close();
					await collab.close();
					await closed;
					await bus?.close();
					redis?.disconnect();
					await db.close();
					await stopTracing();
					log.info('shutdown complete');
				})()),
		};
	} catch (error) {
		await bus?.close();
		redis?.disconnect();
		await db.close().catch(() => {
			// Boot already failed; the original error is the one to report.
		});
		await stopTracing();
		throw error;
	}
}

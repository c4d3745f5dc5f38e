import type { Server } from 'node:http';
import path from 'node:path';
import type { Logger } from 'pino';
import { AuthService } from './auth/service.ts';
import { TokenService } from './auth/tokens.ts';
import { Collab, type UpdatePath } from './collab/collab.ts';
import type { Config } from './config.ts';
import { openDb, type Db } from './db/index.ts';
import { migrate } from './db/migrate.ts';
import { buildHttp, type HttpRoute } from './http/app.ts';
import { listenWide } from './http/acceptors.ts';
import { Redis } from 'ioredis';
import { RoomService } from './rooms.ts';
import * as sessions from './data/sessions.ts';
import { LocalBus, RedisBus, type EventBus } from './events/bus.ts';
import { Metrics } from './metrics.ts';
import { PushService } from './push/service.ts';
import { startTracing } from './tracing.ts';
import { openBlobStore } from './files/open.ts';
import { Uploads } from './files/uploads.ts';
import type { BlobStore } from './files/blob-store.ts';
import { FileCollector } from './files/collect.ts';

export interface App {
	readonly db: Db;
	readonly collab: Collab;
	/** Web Push: `push.sendToUser(userId, payload)` reaches a user's browsers while none of their devices is connected. */
	readonly push: PushService;
	/** The bound address once listening, e.g. to learn the port when PORT=0. */
	readonly url: string;
	/** Every HTTP route the server answers (tests walk them all). */
	readonly routes: readonly HttpRoute[];
	/** Attachments' blob store, and their garbage collection (`collector.collect()` runs a pass now). */
	readonly files: { readonly blobs: BlobStore; readonly collector: FileCollector };
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
	/** The update path of the collaboration server, when not the standard one (only benchmarks compose their own). */
	options: { updatePath?: UpdatePath } = {},
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
		tokens.checkSessionsWith(sessions.liveness(db));
		bus = await startBus(config, log);
		const auth = new AuthService(db, tokens, bus, {
			refreshTtlDays: config.REFRESH_TOKEN_TTL_DAYS,
			loginFailuresPerName: config.LOGIN_FAILURES_PER_NAME,
			loginFailureWindowMinutes: config.LOGIN_FAILURE_WINDOW_MINUTES,
		});
		const rooms = new RoomService(db, bus);
		const vapid = { publicKey: config.VAPID_PUBLIC_KEY, privateKey: config.VAPID_PRIVATE_KEY };
		const keys =
			vapid.publicKey && vapid.privateKey ? (vapid as { publicKey: string; privateKey: string }) : undefined;
		const push = await new PushService(db, log, { subject: config.VAPID_SUBJECT, keys }).init();
		if (config.REDIS_URL) redis = await connectRedis(config.REDIS_URL, log);
		const metrics = new Metrics();
		const collab = new Collab({ db, tokens, bus, redis, push, log, config, metrics, ...options });
		metrics.observe({
			connections: () => collab.hocuspocus.getConnectionsCount(),
			documents: () => collab.hocuspocus.getDocumentsCount(),
			redisUp: redis ? () => (redis as Redis).status === 'ready' : undefined,
		});
		const files = openFiles(config, db, log, metrics);
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
				files,
				redisReady: redis ? async () => void (await (redis as Redis).ping()) : undefined,
			},
			log,
			(route) => routes.push(route),
		);
		collab.attach(http.server as Server);
		const { url, closeAcceptors } = await listenWide(http, { host: config.HOST, port: config.PORT }, log);
		log.info({ url, database: db.kind, redis: Boolean(redis) }, 'server listening');
		files.collector.start();

		let stopping: Promise<void> | undefined;
		const running = { log, http, closeAcceptors, collab, bus, redis, db, stopTracing, files };
		return { db, collab, push, url, routes, files, stop: () => (stopping ??= stop(running)) };
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

/** Attachments: the blob store (disk or S3), the resumable uploads into it, and their garbage collection. */
function openFiles(
	config: Config,
	db: Db,
	log: Logger,
	metrics: Metrics,
): { blobs: BlobStore; uploads: Uploads; collector: FileCollector } {
	const blobs = openBlobStore(config);
	const uploads = new Uploads({
		db,
		blobs,
		log,
		dir: path.join(config.DATA_DIR, 'uploads'),
		maxBytes: config.ATTACHMENT_MAX_BYTES,
		quotaBytes: config.ATTACHMENT_QUOTA_BYTES,
	});
	const collector = new FileCollector(
		{ db, blobs, partials: uploads.partials, log, metrics },
		{
			intervalMs: config.ATTACHMENT_GC_INTERVAL_MINUTES * 60_000,
			graceMs: config.ATTACHMENT_GC_GRACE_HOURS * 3_600_000,
		},
	);
	return { blobs, uploads, collector };
}

/** The node's own Redis client (devices, readiness), logging when Redis goes away and comes back, not every retry. */
async function connectRedis(url: string, log: Logger): Promise<Redis> {
	const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
	let up = true;
	redis.on('error', (error) => {
		if (up) log.warn({ err: error }, 'redis unavailable; retrying');
		up = false;
	});
	redis.on('ready', () => {
		if (!up) log.info('redis available again');
		up = true;
	});
	await redis.connect().catch((error: unknown) => log.warn({ err: error }, 'redis not reachable at boot'));
	return redis;
}

/** The event bus between nodes: Redis pub/sub with REDIS_URL, else in this process. */
async function startBus(config: Config, log: Logger): Promise<EventBus> {
	if (!config.REDIS_URL) return new LocalBus(log);
	const bus = new RedisBus({ url: config.REDIS_URL, prefix: config.REDIS_PREFIX, log });
	await bus.start();
	return bus;
}

/** Stops a running app: no new requests, connections closed and documents flushed, then the rest. */
async function stop(app: {
	log: Logger;
	http: { close(): Promise<void>; server: { closeIdleConnections(): void } };
	closeAcceptors: () => Promise<void>;
	collab: Collab;
	bus: EventBus;
	redis: Redis | undefined;
	db: { close(): Promise<void> };
	stopTracing: () => Promise<void>;
	files: { collector: { stop(): Promise<void> } };
}): Promise<void> {
	app.log.info('shutting down: closing connections and flushing documents');
	// A keep-alive connection whose request was still running when the close began (a download, an upload) goes
	// idle later; Node closes idle connections only once, at the close, so it would hold the close until its
	// keep-alive timeout (72 s). Swept until the server has closed.
	const sweep = setInterval(() => app.http.server.closeIdleConnections(), 200);
	const closed = Promise.all([app.closeAcceptors(), app.http.close()]).finally(() => clearInterval(sweep));
	await app.collab.close();
	await closed;
	// A pass under way stops at its next batch: it must not outlive the database.
	await app.files.collector.stop();
	await app.bus.close();
	app.redis?.disconnect();
	await app.db.close();
	await app.stopTracing();
	app.log.info('shutdown complete');
}

import type { Server as HttpServer, IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { Hocuspocus, type Extension } from '@hocuspocus/server';
import crossws from 'crossws/adapters/node';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Db } from '../db/index.ts';
import { RateLimiter, RateWindow } from '../rate-limiter.ts';
import { FloodLog } from '../log.ts';
import { IdleReclaim } from '../memory.ts';
import { collabRejections } from '#protocol/errors.ts';
import { clientAddress } from '../http/client-address.ts';
import type { TokenService } from '../auth/tokens.ts';
import type { Redis } from 'ioredis';
import type { EventBus } from '../events/bus.ts';
import { limits } from '#protocol/limits.ts';
import { compileFilter } from '#protocol/moderation.ts';
import { Access } from './access.ts';
import { Activity, type PushSender } from './activity.ts';
import { Authentication, type CollabContext } from './authentication.ts';
import { Devices } from './devices.ts';
import { UserChannels } from './user-channels.ts';
import { ClusterRelay } from './cluster-relay.ts';
import { Compaction } from './compaction.ts';
import { DurableAppend, type AcceptedEvents } from './durable-append.ts';
import { DurableLog } from './durable-log.ts';
import { LiveRooms } from './live-rooms.ts';
import { Presence } from './presence.ts';
import { ReadReceipts } from './read-receipts.ts';
import { RoomLoader } from './room-loader.ts';
import { RoomWindow } from './room-window.ts';
import { handlesStateless, StatelessRouter } from './stateless-router.ts';
import { UpdateValidation } from './update-validation.ts';
import { peerWebSocket, relayInTheTurn, TurnBatchedSocket } from './turn-batched-socket.ts';
import { keepOfRequest, socketIdOf, type Peer } from './peers.ts';
import type { judgeUpdate } from './validation.ts';
import type { Metrics } from '../metrics.ts';

export const COLLAB_PATH = '/collab';

/** How long a presence renewal may wait to go out with others (docs/protocol.md, section 9). */
const AWARENESS_RENEWAL_DELAY_MS = 5_000;

/** What the extensions of the update path are built from. */
export interface UpdatePathParts {
	db: Db;
	log: Logger;
	config: Config;
	metrics: Metrics;
	rooms: LiveRooms;
	loader: RoomLoader;
	durable: DurableLog;
	onAccepted: (accepted: AcceptedEvents) => void;
}

/**
 * The extensions every client update goes through, in order, before Hocuspocus applies and relays it. Benchmarks
 * compose their own (bench/bench-server.ts); the server runs this one.
 */
export type UpdatePath = (parts: UpdatePathParts) => Extension[];

/**
 * The extensions of the rooms themselves, in order: loaded, kept to their window, every update judged and made
 * durable (the update path), the log folded into snapshots.
 */
function roomExtensions(deps: {
	db: Db;
	log: Logger;
	config: Config;
	metrics: Metrics;
	updatePath?: UpdatePath;
	onAccepted: (accepted: AcceptedEvents) => void;
}): { loader: RoomLoader; compaction: Compaction; extensions: Extension[] } {
	const { db, log, config, metrics, onAccepted } = deps;
	const rooms = new LiveRooms();
	// Appends commit side by side on Postgres (half the pool, up to 4); PGlite runs one statement at a time anyway.
	const commitsInFlight = db.kind === 'postgres' ? Math.min(4, Math.floor(config.DATABASE_POOL_SIZE / 2)) : 1;
	const durable = new DurableLog(db, log, metrics, { commitsInFlight });
	const loader = new RoomLoader(db, log, rooms);
	const compactAfterUpdates = config.COMPACT_AFTER_UPDATES;
	const compaction = new Compaction({ db, log, rooms, durable, compactAfterUpdates, metrics });
	const parts = { db, log, config, metrics, rooms, loader, durable, onAccepted };
	return {
		loader,
		compaction,
		extensions: [
			loader,
			new RoomWindow(durable, log, rooms, config.ROOM_WINDOW_MESSAGES),
			...(deps.updatePath ?? standardUpdatePath)(parts),
			compaction,
		],
	};
}

/** UpdateValidation with this server's rate limits and content filter (and, for benchmarks, another judge). */
export function configuredValidation({ config, ...parts }: UpdatePathParts, judge?: typeof judgeUpdate) {
	return new UpdateValidation({
		...parts,
		updatesPer10s: config.WRITE_UPDATES_PER_10S,
		messagesPer10s: config.WRITE_MESSAGES_PER_10S,
		anyUpdatesPer10s: config.WS_FRAMES_PER_10S,
		filter: compileFilter({ mode: config.CONTENT_FILTER, words: config.CONTENT_FILTER_WORDS }),
		judge,
	});
}

export const standardUpdatePath: UpdatePath = (parts) => [
	configuredValidation(parts),
	new DurableAppend(parts),
];

/** Hocuspocus's settings that depend on nothing configured. */
const hocuspocusSettings = {
	name: 'chat',
	quiet: true,
	debounce: 2_000,
	maxDebounce: 10_000,
	unloadImmediately: true,
	// A writer holds its own update: it is relayed to the others only (patches/@hocuspocus+server*.patch).
	echoUpdates: false,
	// A connection's own presence change is not sent back to it: it holds its state already (the same patch).
	echoAwareness: false,
	// An awareness update reaches Presence decoded into its states, without a scratch Y.Doc and Awareness per
	// update (a random guid and a timer each; the same patch).
	scratchAwareness: false,
	// A renewal of the state Presence last let through for a connection, byte for byte, is applied without it: it
	// judged that very state already (the same patch).
	awarenessRenewalHooks: false,
	// A presence renewal (a state sent again unchanged, every 15 s per provider) waits up to 5 s and goes out with
	// the room's other renewals, or with its next change: one frame per member for many renewals (the same patch).
	// Changes, arrivals and leaves go out at once; y-protocols drops a state it has not heard from for 30 s.
	awarenessRenewalDelay: AWARENESS_RENEWAL_DELAY_MS,
} as const;

/**
 * The collaboration server: Hocuspocus on the app's own HTTP server at /collab (same port as the
 * API and the SPA), with authentication and the durable persistence path.
 */
export class Collab {
	readonly hocuspocus: Hocuspocus<CollabContext>;
	readonly #compaction: Compaction;
	readonly #ws: ReturnType<typeof crossws>;
	readonly #log: Logger;
	readonly #metrics: Metrics;
	readonly #devices: Devices;
	readonly #channels: UserChannels;
	#closed = false;
	readonly #readReceipts: ReadReceipts;
	readonly #authentication: Authentication;

	readonly #connectionsPerIp: RateLimiter;
	/** Every frame a socket sends counts, whatever it is (finding 8 of docs/security.md): at most this many in 10 s. */
	readonly #framesPer10s: number;
	readonly #floods: FloodLog;
	/** Frames received since boot: the activity IdleReclaim watches. */
	#frames = 0;
	readonly #reclaim: IdleReclaim;
	readonly #clientAddress: (request: IncomingMessage) => string;
	/** How long a shutdown waits for open rooms to store and unload: half of SHUTDOWN_TIMEOUT_MS. */
	readonly #unloadWithinMs: number;

	constructor(deps: {
		db: Db;
		tokens: TokenService;
		bus: EventBus;
		/** The node's Redis client, when there is one (which devices are connected, cluster-wide). */
		redis?: Redis;
		push?: PushSender;
		log: Logger;
		config: Config;
		metrics: Metrics;
		updatePath?: UpdatePath;
	}) {
		const { config } = deps;
		this.#log = deps.log.child({ component: 'collab' });
		this.#metrics = deps.metrics;
		this.#connectionsPerIp = new RateLimiter(config.WS_CONNECTIONS_PER_IP_PER_MINUTE, 60_000);
		this.#framesPer10s = config.WS_FRAMES_PER_10S;
		this.#floods = new FloodLog(this.#log);
		this.#reclaim = new IdleReclaim({ activity: () => this.#frames, log: deps.log });
		this.#clientAddress = clientAddress(config.TRUST_PROXY);
		this.#unloadWithinMs = config.SHUTDOWN_TIMEOUT_MS / 2;
		const node = `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
		this.#devices = new Devices({ redis: deps.redis, prefix: config.REDIS_PREFIX, node, log: deps.log });
		const activity = new Activity({
			db: deps.db,
			log: deps.log,
			bus: deps.bus,
			devices: this.#devices,
			push: deps.push,
		});
		this.#channels = new UserChannels({
			db: deps.db,
			log: deps.log,
			bus: deps.bus,
			devices: this.#devices,
			documents: () => this.hocuspocus.documents,
		});
		const rooms = roomExtensions({ ...deps, onAccepted: (accepted) => activity.accepted(accepted) });
		this.#compaction = rooms.compaction;
		const readReceipts = new ReadReceipts(deps.db, deps.log, deps.bus);
		this.#readReceipts = readReceipts;
		this.#authentication = new Authentication(deps.db, deps.tokens, deps.log, {
			documentsPerConnection: config.DOCUMENTS_PER_CONNECTION,
			loginsPer10s: config.WS_FRAMES_PER_10S,
			metrics: deps.metrics,
		});
		this.hocuspocus = new Hocuspocus<CollabContext>({
			...hocuspocusSettings,
			// Room logins waiting for their answer: the frame budget bounds them, and each gets an answer from
			// Authentication (accepted, or refused with a reason) instead of the whole socket being reset.
			maxPendingDocuments: config.WS_FRAMES_PER_10S,
			extensions: [
				relayInTheTurn,
				// With REDIS_URL, any number of nodes share rooms: updates and awareness travel through Redis.
				...(config.REDIS_URL
					? [
							new ClusterRelay({
								url: config.REDIS_URL,
								prefix: `${config.REDIS_PREFIX}:collab`,
								identifier: node,
								log: deps.log,
								onReconnected: () => rooms.loader.catchUp(),
							}),
						]
					: []),
				this.#authentication,
				new Access({ db: deps.db, log: deps.log, bus: deps.bus, documents: () => this.hocuspocus.documents }),
				this.#channels,
				new Presence(deps.log),
				readReceipts,
				...rooms.extensions,
				new StatelessRouter(
					deps.log,
					[readReceipts, ...rooms.extensions].filter((e) => handlesStateless(e)),
				),
			],
		});
		this.#ws = this.#websocket();
	}

	/** The WebSocket server at /collab: every frame counted against its socket's budget, then to Hocuspocus. */
	#websocket(): ReturnType<typeof crossws> {
		return crossws({
			serverOptions: { maxPayload: limits.updateBytesMax + 64 * 1024 },
			// No ping sweep: it pings every socket in one turn every 30 s (a 40-ms stall at 4,000 sockets), and
			// Hocuspocus already closes a socket that sent nothing for 30 s (`timeout`); clients renew their presence
			// every 15 s, and the server's answer keeps proxies' idle timers from firing.
			idleTimeout: 0,
			hooks: {
				open: (peer) => {
					const p = peer as unknown as Peer;
					// Frames of one turn to this socket leave in one write (turn-batched-socket.ts).
					const websocket = new TurnBatchedSocket(peerWebSocket(p)) as unknown as WebSocket;
					p.__connection = this.hocuspocus.handleConnection(websocket, keepOfRequest(p));
				},
				message: (peer, message) => {
					const p = peer as unknown as Peer;
					this.#frames++;
					if (p.__flooded || !this.#withinBudget(p)) return;
					p.__connection?.handleMessage(message.uint8Array());
				},
				close: (peer, event) => {
					(peer as unknown as Peer).__connection?.handleClose({
						code: event.code ?? 1000,
						reason: event.reason ?? '',
					});
				},
				error: (peer, error) => {
					this.#log.warn({ err: error, socketId: socketIdOf(peer) }, 'websocket error');
				},
			},
		});
	}

	/**
	 * Counts a frame against its socket's budget. Over it, the socket is closed with `rate-limited: try again in
	 * N s` before the frame is read, and nothing more it sends is read: a flood costs the server a counter, not a
	 * decode, a validation and an answer per frame.
	 */
	#withinBudget(peer: Peer): boolean {
		// On the peer, not in a map by `peer.id`: crossws makes that id on first use, one more string per socket.
		const wait = (peer.__frames ??= new RateWindow()).take(this.#framesPer10s, 10_000);
		if (wait === 0) return true;
		peer.__flooded = true;
		const rejection = collabRejections.rateLimited;
		this.#floods.warn(
			{ socketId: socketIdOf(peer), reason: 'frames-per-socket' },
			'websocket closed: rate limited',
		);
		this.#metrics.updatesRejected.inc({ reason: rejection.reason });
		(peer.websocket as WebSocket).close(
			rejection.code,
			`${rejection.reason}: try again in ${Math.ceil(wait / 1000)} s`,
		);
		return false;
	}

	/** Routes WebSocket upgrades of /collab to Hocuspocus; any other upgrade is refused. */
	attach(server: HttpServer): void {
		server.on('upgrade', (request, socket, head) => {
			const pathname = new URL(request.url ?? '/', 'http://localhost').pathname;
			if (pathname !== COLLAB_PATH || this.#closed) {
				socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
				return;
			}
			const ip = this.#clientAddress(request);
			const wait = this.#connectionsPerIp.take(ip);
			if (wait > 0) {
				this.#log.warn({ ip, reason: 'connections-per-ip' }, 'websocket connection refused: rate limited');
				socket.end(
					`HTTP/1.1 429 Too Many Requests\r\nRetry-After: ${Math.ceil(wait / 1000)}\r\nConnection: close\r\n\r\n`,
				);
				return;
			}
			this.#ws.handleUpgrade(request, socket, head).catch((error: unknown) => {
				this.#log.warn({ err: error }, 'websocket upgrade failed');
				socket.destroy();
			});
		});
	}

	/**
	 * Stops taking connections, closes the open ones, waits for every accepted update to be durable
	 * and compacts the documents that have appended updates. Idempotent.
	 */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		this.hocuspocus.closeConnections();
		this.#ws.closeAll(1001, 'server shutting down');
		// Closing the last connection of a document makes Hocuspocus store and unload it; wait for that
		// (bounded), then for every in-flight append and compaction.
		const deadline = Date.now() + this.#unloadWithinMs;
		while (
			(this.hocuspocus.documents.size > 0 || this.hocuspocus.unloadingDocuments.size > 0) &&
			Date.now() < deadline
		) {
			await new Promise((resolve) => setTimeout(resolve, 20));
		}
		await this.#compaction.flush();
		await this.#readReceipts.flush();
		await this.#authentication.flush();
		this.#channels.close();
		this.#devices.close();
		this.#reclaim.close();
	}
}

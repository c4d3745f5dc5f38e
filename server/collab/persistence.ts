import type {
	beforeSyncPayload,
	Extension,
	onLoadDocumentPayload,
	onStatelessPayload,
	onStoreDocumentPayload,
} from '@hocuspocus/server';
import type { Logger } from 'pino';
import * as Y from 'yjs';
import type { Db } from '../db/index.ts';
import * as documents from '../data/documents.ts';
import { roomIdFromDocumentName } from '#protocol/ids.ts';
import { collabRejections } from '#protocol/errors.ts';
import { messagesMapName, type RoomEvent } from '#protocol/events.ts';
import type { ContentFilter } from '#protocol/moderation.ts';
import { readClientStateless, type ServerStateless } from '#protocol/stateless.ts';
import type { CollabContext } from './authentication.ts';
import type { Span } from '@opentelemetry/api';
import type { Metrics } from '../metrics.ts';
import { inSpan } from '../tracing.ts';
import { RateLimiter } from '../rate-limiter.ts';
import { FloodLog } from '../log.ts';
import { DurableLog } from './durable-log.ts';
import { squashTrimmed, trimPlan } from './trim.ts';
import * as messages from '../data/messages.ts';
import * as rooms from '../data/rooms.ts';
import { limits } from '#protocol/limits.ts';
import {
	clientOwners,
	ForeignEntry,
	judgeUpdate,
	MissingTargets,
	UpdateRejected,
	type ArchivedMessage,
	type UpdateJudgement,
} from './validation.ts';

/** The new events of one accepted update, once durable. */
export interface AcceptedEvents {
	roomId: string;
	writer: { id: string; name: string };
	events: RoomEvent[];
}

/** Transactions that replay stored state must not trigger a store of what was just loaded. */
const loadOrigin = { source: 'local', skipStoreHooks: true } as const;

const SYNC_STEP_1 = 0;
/** The origin of the server's own trims of a room's window (see #trim). */
const trimOrigin = { source: 'local', trim: true } as const;
/** A room catches up from the durable log at most this often (see #catchUpRoom). */
const CATCH_UP_INTERVAL_MS = 1_000;

/** The catch-up of one room: the run being prepared, the one in progress, when the last one started. */
interface RoomCatchUp {
	next?: Promise<void>;
	running?: Promise<void>;
	started: number;
}

/**
 * Loads room documents from the snapshot + append log, validates and durably appends every accepted
 * update before it is applied (so "synced" on the client means "in Postgres"), and compacts the log
 * in the background.
 */
export class Persistence implements Extension {
	readonly extensionName = 'persistence';
	readonly #db: Db;
	readonly #log: Logger;
	readonly #durable: DurableLog;
	readonly #compactAfter: number;
	readonly #window: number;
	/** Updates appended per document since its last compaction (this node's view). */
	readonly #appended = new Map<string, number>();
	/** What the validator needs to know about each loaded room beyond its document. */
	readonly #rooms = new Map<
		string,
		{
			/** Keys being appended → the `client:clock` of their struct, and the append's promise. */
			reservedKeys: Map<string, string>;
			appends: Map<string, Promise<void>>;
			owners: Map<number, string>;
			catchUp: RoomCatchUp;
			/** The earliest createdAt an event of the room may carry (its creation less the clock skew). */
			notBefore: number;
		}
	>();
	readonly #compactions = new Map<string, Promise<void>>();

	readonly #updatesPerUser: RateLimiter;
	readonly #messagesPerUser: RateLimiter;
	/** Every update counts here, with or without new events (an empty one costs a decode and an answer too). */
	readonly #anyUpdatesPerUser: RateLimiter;
	readonly #filter: ContentFilter | undefined;
	readonly #judge: typeof judgeUpdate;
	readonly #relayBeforeCommit: boolean;
	readonly #metrics: Metrics | undefined;
	readonly #onAccepted: ((accepted: AcceptedEvents) => void) | undefined;
	/** Refused updates: a line each up to a limit per interval, then counted (an attacker can send them at will). */
	readonly #refusals: FloodLog;

	constructor(
		db: Db,
		log: Logger,
		options: {
			compactAfterUpdates: number;
			/** Messages a room's live document keeps; at 1.5× that, older ones are trimmed into history. */
			windowMessages?: number;
			updatesPer10s: number;
			messagesPer10s: number;
			/** Updates of any kind per user per 10 s (`WS_FRAMES_PER_10S`). */
			anyUpdatesPer10s?: number;
			filter?: ContentFilter;
			/** Only benchmarks replace the validator (bench/validation-server.ts measures what it costs). */
			judge?: typeof judgeUpdate;
			/**
			 * Only benchmarks set this (bench/load.ts, target `ours-relay-first`): relay an accepted update at once
			 * and hold back only the writer's ack until the append commits. Not safe to ship: see
			 * docs/benchmarks.md ("Relay before the commit").
			 */
			relayBeforeCommit?: boolean;
			metrics?: Metrics;
			/** Told of every update's new events once they are durable (the user channels and notifications). */
			onAccepted?: (accepted: AcceptedEvents) => void;
		},
	) {
		this.#db = db;
		this.#log = log.child({ component: 'persistence' });
		this.#refusals = new FloodLog(this.#log, {
			summary: 'more updates were refused than are logged one by one; counted by reason',
		});
		this.#metrics = options.metrics;
		this.#durable = new DurableLog(db, this.#log, options.metrics);
		this.#compactAfter = options.compactAfterUpdates;
		this.#window = options.windowMessages ?? 5_000;
		this.#updatesPerUser = new RateLimiter(options.updatesPer10s, 10_000);
		this.#messagesPerUser = new RateLimiter(options.messagesPer10s, 10_000);
		this.#anyUpdatesPerUser = new RateLimiter(options.anyUpdatesPer10s ?? 1_000, 10_000);
		this.#filter = options.filter?.mode === 'off' ? undefined : options.filter;
		this.#judge = options.judge ?? judgeUpdate;
		this.#relayBeforeCommit = options.relayBeforeCommit ?? false;
		this.#onAccepted = options.onAccepted;
	}

	async onLoadDocument({ document, documentName }: onLoadDocumentPayload): Promise<void> {
		// Only rooms are stored; a user channel (`user:<id>`) is an empty document the server speaks on.
		if (!roomIdFromDocumentName(documentName)) return;
		const [updates, createdAt] = await Promise.all([
			this.#applyStored(document, documentName),
			rooms.createdAt(this.#db, roomIdFromDocumentName(documentName) as string),
		]);
		this.#appended.set(documentName, updates);
		const owners = clientOwners(document);
		this.#rooms.set(documentName, {
			reservedKeys: new Map(),
			appends: new Map(),
			owners,
			catchUp: { started: 0 },
			notBefore: (createdAt ?? 0) - limits.maxClockSkewMs,
		});
		// Entries that arrive from other nodes (Redis) or a catch-up bind their client ids too, so a user on
		// this node cannot borrow the client id of someone who wrote on another node.
		document.getMap(messagesMapName).observe((event) => {
			const map = event.target as Y.Map<unknown>;
			for (const [key, change] of event.changes.keys) {
				if (change.action !== 'add') continue;
				const item = map._map.get(key);
				const senderId = (item?.content.getContent()[0] as { senderId?: unknown } | undefined)?.senderId;
				if (item && typeof senderId === 'string') owners.set(item.id.client, senderId);
			}
		});
		await this.#trim(document, documentName);
	}

	/**
	 * Keeps a room's live document bounded: once it holds 1.5× the window, the oldest messages (and what points
	 * at them) are deleted from it in one server transaction, appended to the durable log like any update, and
	 * relayed; Yjs then keeps only small tombstones. Clients move what disappears into their history cache, and
	 * page older history in from the mirror. Deterministic, so nodes that trim the same room agree.
	 */
	async #trim(document: Y.Doc, documentName: string): Promise<void> {
		const map = document.getMap(messagesMapName);
		if (map.size <= Math.floor(this.#window * 1.5)) return;
		const doomed = trimPlan(map, this.#window);
		if (doomed.length === 0) return;
		let update: Uint8Array | undefined;
		const capture = (u: Uint8Array, origin: unknown) => {
			if (origin === trimOrigin) update = u;
		};
		document.on('update', capture);
		try {
			Y.transact(document, () => doomed.forEach((key) => map.delete(key)), trimOrigin);
		} finally {
			document.off('update', capture);
		}
		if (!update) return;
		// What a reload would do: the tombstones become GC runs, so a live room's memory stays bounded however
		// long it stays open (about 300 bytes of heap per trimmed entry otherwise).
		squashTrimmed(document, messagesMapName);
		const roomId = roomIdFromDocumentName(documentName) as string;
		try {
			await this.#durable.append({ documentName, roomId, update, events: [] });
			this.#appended.set(documentName, (this.#appended.get(documentName) ?? 0) + 1);
			this.#log.info({ documentName, trimmed: doomed.length, kept: map.size }, 'room window trimmed');
		} catch (error) {
			// The live document is trimmed but the log is not: a reload brings the entries back, and they are
			// trimmed again. Nothing is lost either way: they are in the mirror.
			this.#log.warn({ err: error, documentName }, 'room trim not stored; it is redone on the next load');
		}
	}

	/** Applies the stored snapshot and log to `document` (a fresh one, or a live one catching up). */
	async #applyStored(document: Y.Doc, documentName: string): Promise<number> {
		const stored = await documents.load(this.#db, documentName);
		Y.transact(
			document,
			() => {
				if (stored.snapshot) Y.applyUpdate(document, stored.snapshot);
				for (const { id, update } of stored.updates) {
					try {
						Y.applyUpdate(document, update);
					} catch (error) {
						// Every logged update was applied to a server document once; one that fails now is logged
						// and skipped so the room still opens with everything else.
						this.#log.error({ err: error, documentName, updateId: id }, 'stored update could not be applied');
					}
				}
			},
			loadOrigin,
		);
		return stored.updates.length;
	}

	/**
	 * Applies what the durable log holds to every open room: after this node missed relayed updates (Redis was
	 * away), this makes each room whole again, and Hocuspocus sends the difference to its clients.
	 */
	async catchUp(documents: ReadonlyMap<string, Y.Doc>): Promise<void> {
		for (const [documentName, document] of documents) {
			const room = this.#rooms.get(documentName);
			if (room) await this.#catchUpRoom(document, documentName, room.catchUp);
		}
	}

	/**
	 * Re-reads a room's durable log into its live document, for callers that met an entry they do not hold.
	 * Coalesced: everyone waiting shares the next run, which starts after they asked (so it sees what was
	 * committed before) and at most once per CATCH_UP_INTERVAL_MS, so forged updates cannot make the node
	 * reload a room in a loop; they wait for the next run and are refused then.
	 */
	#catchUpRoom(document: Y.Doc, documentName: string, state: RoomCatchUp): Promise<void> {
		state.next ??= (async () => {
			await state.running?.catch(() => undefined);
			await new Promise((r) => setTimeout(r, Math.max(0, state.started + CATCH_UP_INTERVAL_MS - Date.now())));
			state.next = undefined;
			state.started = Date.now();
			state.running = this.#applyStored(document, documentName).then(() => undefined);
			await state.running;
		})();
		return state.next;
	}

	/**
	 * Every update a client sends: judged, durably appended with its mirror rows, then (once this resolves)
	 * applied and relayed by Hocuspocus, and acknowledged. One trace per update (`chat.update`), with the
	 * validation, the durable append and the mirror write as its children (docs/operations.md).
	 */
	beforeSync(payload: beforeSyncPayload<CollabContext>): Promise<void> {
		if (payload.type === SYNC_STEP_1 || payload.connection.readOnly) return Promise.resolve();
		const context = payload.connection.context as CollabContext;
		return inSpan(
			'chat.update',
			{
				attributes: {
					'chat.connection_id': context.connectionId,
					'chat.room_id': roomIdFromDocumentName(payload.documentName) ?? '',
					'chat.update.bytes': payload.payload.length,
				},
			},
			(span) => this.#update(payload, span),
		);
	}

	async #update(
		{ connection, document, documentName, payload }: beforeSyncPayload<CollabContext>,
		span: Span,
	): Promise<void> {
		const receivedAt = performance.now();
		const context = connection.context as CollabContext;
		const roomId = roomIdFromDocumentName(documentName);
		if (!roomId) throw collabRejections.unknownDocument;

		const room = this.#rooms.get(documentName);
		if (!room) throw collabRejections.unavailable;
		const flooding = this.#anyUpdatesPerUser.take(context.user.id);
		if (flooding > 0) {
			this.#refusals.warn({ userId: context.user.id, roomId, reason: 'updates-per-user' }, 'update rejected');
			this.#countRejection(collabRejections.rateLimited);
			throw retryLater(
				connection,
				new UpdateRejected(collabRejections.rateLimited, `try again in ${Math.ceil(flooding / 1000)} s`),
			);
		}
		const archived = new Map<string, ArchivedMessage>();
		const judge = () =>
			this.#judge(payload, {
				archived,
				doc: document,
				userId: context.user.id,
				now: Date.now(),
				reservedKeys: room.reservedKeys,
				owners: room.owners,
				filter: this.#filter,
				canModerate: context.moderator,
				notBefore: room.notBefore,
			});
		let judgement: UpdateJudgement;
		try {
			judgement = await inSpan('chat.validate', {}, () =>
				this.#judgeKnowingMore(judge, archived, connection, document, documentName, room),
			);
		} catch (error) {
			this.#countRejection(error);
			if (error instanceof UpdateRejected) {
				this.#refusals.warn(
					{
						userId: context.user.id,
						roomId,
						reason: error.detail,
						bytes: payload.length,
						connectionId: context.connectionId,
					},
					'update rejected',
				);
			}
			throw error;
		}
		if (judgement.events.length > 0) {
			const wait = Math.max(
				this.#updatesPerUser.take(context.user.id),
				this.#messagesPerUser.take(context.user.id, judgement.events.length),
			);
			if (wait > 0) {
				this.#refusals.warn(
					{ userId: context.user.id, roomId, reason: 'rate-limited', messages: judgement.events.length },
					'update rejected',
				);
				this.#countRejection(collabRejections.rateLimited);
				throw retryLater(
					connection,
					new UpdateRejected(collabRejections.rateLimited, `try again in ${Math.ceil(wait / 1000)} s`),
				);
			}
		}
		// Bound at once, before the append: a racing update from another user with the same client id is
		// refused instead of both being stored.
		for (const client of judgement.clients) room.owners.set(client, context.user.id);
		const keys = judgement.events.map((e) => e.clientMsgId);
		span.setAttribute('chat.client_msg_ids', keys);
		if (this.#relayBeforeCommit && keys.length > 0 && judgement.inFlightKeys.length === 0) {
			this.#append(documentName, roomId, payload, judgement, room, receivedAt, span, context.user.id).then(
				() => {
					this.#countAccepted(payload, judgement.events);
					this.#tell(roomId, context, judgement.events);
					sendAck(connection, [...keys, ...judgement.knownKeys]);
				},
				() =>
					connection.webSocket.close(collabRejections.unavailable.code, collabRejections.unavailable.reason),
			);
			return;
		}
		try {
			// Structs another connection is appending right now are durable only once that append commits.
			await Promise.all(judgement.inFlightKeys.map((key) => room.appends.get(key)));
			if (keys.length > 0)
				await this.#append(documentName, roomId, payload, judgement, room, receivedAt, span, context.user.id);
		} catch (error) {
			this.#countRejection(error instanceof UpdateRejected ? error : collabRejections.unavailable);
			if (error instanceof UpdateRejected) {
				// Refused by the durable log itself: an id another sender's event in the room's history holds.
				this.#refusals.warn(
					{ userId: context.user.id, roomId, reason: error.detail, bytes: payload.length },
					'update rejected',
				);
				throw error;
			}
			throw retryLater(connection, { ...collabRejections.unavailable });
		}
		if (keys.length > 0) {
			this.#countAccepted(payload, judgement.events);
			this.#tell(roomId, context, judgement.events);
			this.#log.debug(
				{ connectionId: context.connectionId, roomId, clientMsgIds: keys, bytes: payload.length },
				'update accepted',
			);
		}
		sendAck(connection, [...keys, ...judgement.inFlightKeys, ...judgement.knownKeys]);
	}

	#tell(roomId: string, context: CollabContext, events: RoomEvent[]): void {
		if (!this.#onAccepted || events.length === 0) return;
		try {
			this.#onAccepted({ roomId, writer: context.user, events });
		} catch (error) {
			// The update is durable and acknowledged; a listener's failure must not turn that into a refusal.
			this.#log.error({ err: error, roomId }, 'accepted-events listener failed');
		}
	}

	#countAccepted(update: Uint8Array, events: RoomEvent[]): void {
		if (!this.#metrics) return;
		this.#metrics.updateBytes.observe(update.length);
		for (const event of events) this.#metrics.eventsAccepted.inc({ kind: event.kind });
	}

	/** Counts a refused update by its bare reason (`invalid-update`, `rate-limited`, …). */
	#countRejection(error: unknown): void {
		const reason =
			error instanceof UpdateRejected
				? error.rejection
				: typeof (error as { reason?: unknown })?.reason === 'string'
					? (error as { reason: string }).reason
					: undefined;
		if (reason && Object.values(collabRejections).some((r) => r.reason === reason))
			this.#metrics?.updatesRejected.inc({ reason });
	}

	/**
	 * A client asks which of its unacknowledged messages the server holds (`pending` in stateless.ts). Every
	 * entry of a server document is durable: it came from the append log, from this node's own appends, or
	 * from another node that appended it before relaying it. Entries still being appended are waited for.
	 */
	async onStateless({ connection, document, documentName, payload }: onStatelessPayload): Promise<void> {
		const message = readClientStateless(payload);
		const context = connection.context as CollabContext;
		if (!message) {
			this.#log.debug(
				{ userId: context.user.id, documentName, bytes: payload.length },
				'unknown stateless message ignored',
			);
			return;
		}
		// Other types are other extensions' business (read positions: ReadReceipts).
		if (message.type !== 'pending') return;
		const room = this.#rooms.get(documentName);
		const ids = message.clientMsgIds;
		await Promise.all(ids.map((id) => room?.appends.get(id)?.catch(() => undefined)));
		const messages = document.getMap(messagesMapName);
		const held = ids.filter((id) => {
			const value = messages.get(id) as { senderId?: unknown } | undefined;
			return value?.senderId === context.user.id;
		});
		sendAck(connection, held);
	}

	/**
	 * Judges an update, and when it names entries this node does not hold, looks for them before refusing:
	 * targets of edits and reactions in the room's history (trimmed from the document), other users' entries
	 * in the durable log (the room's next catch-up). What is still unknown after that is refused.
	 */
	async #judgeKnowingMore(
		judge: () => UpdateJudgement,
		archived: Map<string, ArchivedMessage>,
		connection: { webSocket: { close(code?: number, reason?: string): void } },
		document: Y.Doc,
		documentName: string,
		room: { catchUp: RoomCatchUp },
	): Promise<UpdateJudgement> {
		const roomId = roomIdFromDocumentName(documentName) as string;
		const looked = new Set<string>();
		let caughtUp = false;
		for (;;) {
			try {
				return judge();
			} catch (error) {
				if (!(error instanceof ForeignEntry)) throw error;
				try {
					const unknown =
						error instanceof MissingTargets ? error.targetIds.filter((id) => !looked.has(id)) : [];
					if (unknown.length > 0) {
						for (const id of unknown) looked.add(id);
						const found = await messages.kindsAndSenders(this.#db, roomId, unknown);
						for (const [id, target] of found) archived.set(id, target);
						if (found.size > 0) continue;
					}
					if (caughtUp) throw error;
					caughtUp = true;
					await this.#catchUpRoom(document, documentName, room.catchUp);
				} catch (failure) {
					if (failure instanceof UpdateRejected) throw failure;
					throw retryLater(connection, { ...collabRejections.unavailable });
				}
			}
		}
	}

	async #append(
		documentName: string,
		roomId: string,
		update: Uint8Array,
		judgement: { events: RoomEvent[]; structIds: string[] },
		room: { reservedKeys: Map<string, string>; appends: Map<string, Promise<void>> },
		receivedAt?: number,
		span?: Span,
		writerId?: string,
	) {
		const { events } = judgement;
		const keys = events.map((e) => e.clientMsgId);
		const done = this.#durable.append({ documentName, roomId, update, events, receivedAt, span, writerId });
		keys.forEach((key, i) => {
			room.reservedKeys.set(key, judgement.structIds[i] as string);
			room.appends.set(key, done);
		});
		try {
			await done;
		} finally {
			// Released on the next turn: by then Hocuspocus has applied the update (it does so right after
			// this hook resolves), so the keys are in the document and a racing duplicate is still refused.
			setImmediate(() => {
				for (const key of keys) {
					room.reservedKeys.delete(key);
					room.appends.delete(key);
				}
			});
		}
		this.#appended.set(documentName, (this.#appended.get(documentName) ?? 0) + 1);
	}

	/**
	 * Hocuspocus calls this debounced after changes, and at once when the last client leaves. The log
	 * already holds every accepted update, so this only compacts: when enough updates piled up, or
	 * when the document is about to be unloaded.
	 */
	async onStoreDocument({ document, documentName, clientsCount }: onStoreDocumentPayload): Promise<void> {
		if (!this.#rooms.has(documentName)) return;
		await this.#trim(document, documentName);
		const appended = this.#appended.get(documentName) ?? 0;
		if (appended === 0 || (clientsCount > 0 && appended < this.#compactAfter)) return;
		await this.compact(documentName);
	}

	async afterUnloadDocument({ documentName }: { documentName: string }): Promise<void> {
		this.#appended.delete(documentName);
		this.#rooms.delete(documentName);
	}

	/** Folds a document's log into its snapshot. Concurrent calls for one document share one run. */
	compact(documentName: string): Promise<void> {
		let run = this.#compactions.get(documentName);
		if (!run) {
			run = this.#compact(documentName).finally(() => this.#compactions.delete(documentName));
			this.#compactions.set(documentName, run);
		}
		return run;
	}

	#compact(documentName: string): Promise<void> {
		return inSpan('chat.compact', { attributes: { 'chat.document': documentName } }, () =>
			this.#compactNow(documentName),
		);
	}

	async #compactNow(documentName: string): Promise<void> {
		const started = performance.now();
		try {
			const before = this.#appended.get(documentName) ?? 0;
			const folded = await documents.compact(this.#db, documentName, (stored) => {
				const doc = new Y.Doc();
				try {
					if (stored.snapshot) Y.applyUpdate(doc, stored.snapshot);
					for (const { id, update } of stored.updates) {
						try {
							Y.applyUpdate(doc, update);
						} catch (error) {
							this.#log.error(
								{ err: error, documentName, updateId: id },
								'stored update could not be folded',
							);
						}
					}
					squashTrimmed(doc, messagesMapName);
					return Y.encodeStateAsUpdate(doc);
				} finally {
					doc.destroy();
				}
			});
			if (this.#appended.has(documentName)) {
				this.#appended.set(documentName, Math.max(0, (this.#appended.get(documentName) ?? before) - folded));
			}
			this.#metrics?.compactions.inc({ result: 'ok' });
			this.#metrics?.compactionSeconds.observe((performance.now() - started) / 1_000);
			this.#log.debug(
				{ documentName, folded, ms: Math.round(performance.now() - started) },
				'document compacted',
			);
		} catch (error) {
			// The log still holds every update; the next store or the next load tries again.
			this.#metrics?.compactions.inc({ result: 'failed' });
			this.#log.error({ err: error, documentName }, 'compaction failed; will retry later');
		}
	}

	/** For shutdown: waits for in-flight appends, then compacts every document with appended updates. */
	async flush(): Promise<void> {
		await this.#durable.drain();
		await Promise.all([...this.#appended].filter(([, n]) => n > 0).map(([name]) => this.compact(name)));
	}
}

function sendAck(connection: { sendStateless(payload: string): void }, clientMsgIds: string[]): void {
	if (clientMsgIds.length === 0) return;
	connection.sendStateless(JSON.stringify({ type: 'ack', clientMsgIds } satisfies ServerStateless));
}

/**
 * A refusal the client should simply retry (storage down, rate limit) closes the whole socket, not
 * just the room: the provider then reconnects with its own backoff and its sync step re-sends what
 * was refused. Closing only the room would leave the provider waiting for a reconnect that never comes.
 */
function retryLater<E extends { code: number; reason: string }>(
	connection: { webSocket: { close(code?: number, reason?: string): void } },
	rejection: E,
): E {
	connection.webSocket.close(rejection.code, rejection.reason);
	return rejection;
}

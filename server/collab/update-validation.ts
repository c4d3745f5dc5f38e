import type { beforeSyncPayload, Extension } from '@hocuspocus/server';
import { SpanStatusCode } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { collabRejections } from '#protocol/errors.ts';
import { roomIdFromDocumentName } from '#protocol/ids.ts';
import type { ContentFilter } from '#protocol/moderation.ts';
import * as messages from '../data/messages.ts';
import type { Db } from '../db/index.ts';
import { FloodLog } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { RateLimiter } from '../rate-limiter.ts';
import { inSpan, tracer } from '../tracing.ts';
import type { CollabContext } from './authentication.ts';
import { carriesUpdate, countRejection, retryLater, type LiveRoom, type LiveRooms } from './live-rooms.ts';
import type { RoomLoader } from './room-loader.ts';
import { checkAttachments } from './attachment-check.ts';
import {
	judgeUpdate,
	UpdateRejected,
	verdictOf,
	type ArchivedMessage,
	type UpdateJudgement,
} from './validation.ts';

/** The rate limiters' window. */
const WINDOW_MS = 10_000;

type Connection = beforeSyncPayload<CollabContext>['connection'];

/**
 * Judges every update a client sends before anything else happens to it: the writer's rate limits, then the
 * update itself (validation.ts), looking for what it names that this node does not hold (targets trimmed into
 * history, other users' entries in the durable log) before refusing it. An accepted update's judgement is left in
 * LiveRooms for DurableAppend, with the update's trace (`chat.update`).
 */
export class UpdateValidation implements Extension {
	readonly extensionName = 'update-validation';
	readonly #db: Db;
	readonly #rooms: LiveRooms;
	readonly #loader: RoomLoader;
	readonly #filter: ContentFilter | undefined;
	readonly #judge: typeof judgeUpdate;
	readonly #metrics: Metrics | undefined;
	/** Every update counts here, with or without new events (an empty one costs a decode and an answer too). */
	readonly #anyUpdatesPerUser: RateLimiter;
	readonly #updatesPerUser: RateLimiter;
	readonly #messagesPerUser: RateLimiter;
	/** Refused updates: a line each up to a limit per interval, then counted (an attacker can send them at will). */
	readonly #refusals: FloodLog;

	constructor(deps: {
		db: Db;
		log: Logger;
		rooms: LiveRooms;
		loader: RoomLoader;
		updatesPer10s: number;
		messagesPer10s: number;
		/** Updates of any kind per user per 10 s (`WS_FRAMES_PER_10S`). */
		anyUpdatesPer10s: number;
		filter?: ContentFilter;
		/** Only benchmarks replace the validator (bench/validation-server.ts measures what it costs). */
		judge?: typeof judgeUpdate;
		metrics?: Metrics;
	}) {
		this.#db = deps.db;
		this.#rooms = deps.rooms;
		this.#loader = deps.loader;
		this.#filter = deps.filter?.mode === 'off' ? undefined : deps.filter;
		this.#judge = deps.judge ?? judgeUpdate;
		this.#metrics = deps.metrics;
		this.#anyUpdatesPerUser = new RateLimiter(deps.anyUpdatesPer10s, WINDOW_MS);
		this.#updatesPerUser = new RateLimiter(deps.updatesPer10s, WINDOW_MS);
		this.#messagesPerUser = new RateLimiter(deps.messagesPer10s, WINDOW_MS);
		this.#refusals = new FloodLog(deps.log.child({ component: 'update-validation' }), {
			summary: 'more updates were refused than are logged one by one; counted by reason',
		});
	}

	async beforeSync(payload: beforeSyncPayload<CollabContext>): Promise<void> {
		if (!carriesUpdate(payload)) return;
		const receivedAt = performance.now();
		const roomId = roomIdFromDocumentName(payload.documentName);
		if (!roomId) throw collabRejections.unknownDocument;
		const room = this.#rooms.get(payload.documentName);
		if (!room) throw collabRejections.unavailable;
		const context = payload.connection.context as CollabContext;
		// One trace per update: this validation and DurableAppend's append are its children (docs/operations.md).
		const span = tracer.startSpan('chat.update', {
			attributes: {
				'chat.connection_id': context.connectionId,
				'chat.room_id': roomId,
				'chat.update.bytes': payload.payload.length,
			},
		});
		try {
			const judgement = await inSpan('chat.validate', {}, () => this.#validate(payload, room, context), span);
			this.#rooms.judged.set(payload, { judgement, span, receivedAt });
		} catch (error) {
			span.recordException(error instanceof Error ? error : String((error as { reason?: unknown }).reason));
			span.setStatus({ code: SpanStatusCode.ERROR });
			span.end();
			throw error;
		}
	}

	async #validate(
		{ connection, document, payload }: beforeSyncPayload<CollabContext>,
		room: LiveRoom,
		context: CollabContext,
	): Promise<UpdateJudgement> {
		const userId = context.user.id;
		this.#withinRate(connection, room, userId, this.#anyUpdatesPerUser.take(userId), 'updates-per-user');
		const archived = new Map<string, ArchivedMessage>();
		const judge = () =>
			this.#judge(payload, {
				archived,
				doc: document,
				userId,
				now: Date.now(),
				reservedKeys: room.reservedKeys,
				owners: room.owners,
				filter: this.#filter,
				canModerate: context.moderator,
				notBefore: room.notBefore,
			});
		const judgement = await this.#judgeKnowingMore(judge, archived, connection, room)
			.then(async (judged) => {
				await checkAttachments(this.#db, room.roomId, judged.events);
				return judged;
			})
			.catch((error: unknown) => {
				countRejection(this.#metrics, error);
				if (error instanceof UpdateRejected) {
					const { connectionId } = context;
					const fields = {
						userId,
						roomId: room.roomId,
						reason: error.detail,
						bytes: payload.length,
						connectionId,
					};
					this.#refusals.warn(fields, 'update rejected');
				}
				throw error;
			});
		if (judgement.events.length > 0) {
			const wait = Math.max(
				this.#updatesPerUser.take(userId),
				this.#messagesPerUser.take(userId, judgement.events.length),
			);
			this.#withinRate(connection, room, userId, wait, 'rate-limited', judgement.events.length);
		}
		// Bound at once, before the append: a racing update from another user with the same client id is
		// refused instead of both being stored.
		for (const client of judgement.clients) room.owners.set(client, userId);
		return judgement;
	}

	/** Refuses the update (and closes the socket: the provider retries) when the writer must wait `wait` ms. */
	#withinRate(
		connection: Connection,
		room: LiveRoom,
		userId: string,
		wait: number,
		why: string,
		n?: number,
	): void {
		if (wait <= 0) return;
		this.#refusals.warn({ userId, roomId: room.roomId, reason: why, messages: n }, 'update rejected');
		countRejection(this.#metrics, collabRejections.rateLimited);
		throw retryLater(
			connection,
			new UpdateRejected(collabRejections.rateLimited, `try again in ${Math.ceil(wait / 1000)} s`),
		);
	}

	/**
	 * Judges an update, and when it names entries this node does not hold, looks for them before refusing:
	 * targets of edits and reactions in the room's history (trimmed from the document), other users' entries
	 * in the durable log (the room's next catch-up). What is still unknown after that is refused.
	 */
	async #judgeKnowingMore(
		judge: () => UpdateJudgement,
		archived: Map<string, ArchivedMessage>,
		connection: Connection,
		room: LiveRoom,
	): Promise<UpdateJudgement> {
		const looked = new Set<string>();
		let caughtUp = false;
		for (;;) {
			const verdict = verdictOf(judge);
			if (verdict.accepted) return verdict.judgement;
			const { rejection, lookFor } = verdict;
			if (!lookFor) throw rejection;
			try {
				const unknown = lookFor === 'foreign-entry' ? [] : lookFor.targetIds.filter((id) => !looked.has(id));
				if (unknown.length > 0) {
					for (const id of unknown) looked.add(id);
					const found = await messages.kindsAndSenders(this.#db, room.roomId, unknown);
					for (const [id, target] of found) archived.set(id, target);
					if (found.size > 0) continue;
				}
				if (caughtUp) throw rejection;
				caughtUp = true;
				await this.#loader.catchUpRoom(room);
			} catch (failure) {
				if (failure instanceof UpdateRejected) throw failure;
				throw retryLater(connection, { ...collabRejections.unavailable });
			}
		}
	}
}

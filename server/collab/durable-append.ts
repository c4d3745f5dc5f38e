import type { beforeSyncPayload, Extension, onStatelessPayload } from '@hocuspocus/server';
import { SpanStatusCode } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { collabRejections } from '#protocol/errors.ts';
import { messagesMapName, type RoomEvent } from '#protocol/events.ts';
import { FloodLog } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { withActiveSpan } from '../tracing.ts';
import type { CollabContext } from './authentication.ts';
import type { DurableLog } from './durable-log.ts';
import {
	carriesUpdate,
	countRejection,
	retryLater,
	sendAck,
	type JudgedUpdate,
	type LiveRoom,
	type LiveRooms,
} from './live-rooms.ts';
import type { ClientStatelessHandlers, HandlesStateless } from './stateless-router.ts';
import { UpdateRejected } from './validation.ts';

/** The new events of one accepted update, once durable. */
export interface AcceptedEvents {
	roomId: string;
	writer: { id: string; name: string };
	events: RoomEvent[];
}

/**
 * Makes every accepted update durable before Hocuspocus applies and relays it (once `beforeSync` resolves), so
 * "acknowledged" on a client means "in Postgres": appends it with its mirror rows, then acks its events to the
 * writer (`ack` in stateless.ts) and tells `onAccepted`. Also answers `pending`: which of a client's
 * unacknowledged messages the server holds. Runs right after UpdateValidation, whose judgement it takes.
 */
export class DurableAppend implements Extension, HandlesStateless {
	readonly extensionName = 'durable-append';
	readonly #durable: DurableLog;
	readonly #log: Logger;
	readonly #rooms: LiveRooms;
	readonly #metrics: Metrics | undefined;
	readonly #onAccepted: ((accepted: AcceptedEvents) => void) | undefined;
	readonly #refusals: FloodLog;

	constructor(deps: {
		durable: DurableLog;
		log: Logger;
		rooms: LiveRooms;
		metrics?: Metrics;
		/** Told of every update's new events once they are durable (the user channels and notifications). */
		onAccepted?: (accepted: AcceptedEvents) => void;
	}) {
		this.#durable = deps.durable;
		this.#log = deps.log.child({ component: 'durable-append' });
		this.#rooms = deps.rooms;
		this.#metrics = deps.metrics;
		this.#onAccepted = deps.onAccepted;
		this.#refusals = new FloodLog(this.#log);
	}

	async beforeSync(payload: beforeSyncPayload<CollabContext>): Promise<void> {
		if (!carriesUpdate(payload)) return;
		const judged = this.#rooms.judged.get(payload);
		const room = this.#rooms.get(payload.documentName);
		if (!judged || !room) {
			// Never apply an update that was not judged: a composition without UpdateValidation before this.
			this.#log.error({ documentName: payload.documentName }, 'an update reached the append unjudged');
			throw collabRejections.unavailable;
		}
		this.#rooms.judged.delete(payload);
		try {
			await withActiveSpan(judged.span, () => this.commit(payload, room, judged));
		} catch (error) {
			judged.span.setStatus({ code: SpanStatusCode.ERROR });
			throw error;
		} finally {
			judged.span.end();
		}
	}

	/** Appends a judged update (after the appends it depends on), then acks and tells what it added. */
	async commit(
		{ connection, payload }: beforeSyncPayload<CollabContext>,
		room: LiveRoom,
		{ judgement, span, receivedAt }: JudgedUpdate,
	): Promise<void> {
		const context = connection.context as CollabContext;
		const keys = judgement.events.map((e) => e.clientMsgId);
		span.setAttribute('chat.client_msg_ids', keys);
		try {
			// Structs another connection is appending right now are durable only once that append commits.
			await Promise.all(judgement.inFlightKeys.map((key) => room.appends.get(key)));
			if (keys.length > 0) await this.append(room, payload, { judgement, span, receivedAt }, context.user.id);
		} catch (error) {
			countRejection(this.#metrics, error instanceof UpdateRejected ? error : collabRejections.unavailable);
			if (error instanceof UpdateRejected) {
				// Refused by the durable log itself: an id another sender's event in the room's history holds.
				const fields = {
					userId: context.user.id,
					roomId: room.roomId,
					reason: error.detail,
					bytes: payload.length,
				};
				this.#refusals.warn(fields, 'update rejected');
				throw error;
			}
			throw retryLater(connection, { ...collabRejections.unavailable });
		}
		if (keys.length > 0) {
			this.accepted(room, context, payload, judgement.events);
			this.#log.debug(
				{
					connectionId: context.connectionId,
					roomId: room.roomId,
					clientMsgIds: keys,
					bytes: payload.length,
				},
				'update accepted',
			);
		}
		sendAck(connection, [...keys, ...judgement.inFlightKeys, ...judgement.knownKeys]);
	}

	/** Appends the update with its events' mirror rows; its keys stay reserved until Hocuspocus applied it. */
	async append(room: LiveRoom, update: Uint8Array, judged: JudgedUpdate, writerId: string): Promise<void> {
		const { judgement, span, receivedAt } = judged;
		const { documentName, roomId } = room;
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
		room.appended++;
	}

	/** Counts what a durable update added and tells `onAccepted`. */
	accepted(room: LiveRoom, context: CollabContext, update: Uint8Array, events: RoomEvent[]): void {
		if (this.#metrics) {
			this.#metrics.updateBytes.observe(update.length);
			for (const event of events) this.#metrics.eventsAccepted.inc({ kind: event.kind });
		}
		if (!this.#onAccepted || events.length === 0) return;
		try {
			this.#onAccepted({ roomId: room.roomId, writer: context.user, events });
		} catch (error) {
			// The update is durable and acknowledged; a listener's failure must not turn that into a refusal.
			this.#log.error({ err: error, roomId: room.roomId }, 'accepted-events listener failed');
		}
	}

	/**
	 * A client asks which of its unacknowledged messages the server holds (`pending` in stateless.ts). Every
	 * entry of a server document is durable: it came from the append log, from this node's own appends, or
	 * from another node that appended it before relaying it. Entries still being appended are waited for.
	 */
	readonly statelessHandlers: ClientStatelessHandlers = {
		pending: (message, payload) => this.#answerPending(message.clientMsgIds, payload),
	};

	async #answerPending(
		ids: string[],
		{ connection, document, documentName }: onStatelessPayload,
	): Promise<void> {
		const context = connection.context as CollabContext;
		const room = this.#rooms.get(documentName);
		await Promise.all(ids.map((id) => room?.appends.get(id)?.catch(() => undefined)));
		const entries = document.getMap(messagesMapName);
		const held = ids.filter(
			(id) => (entries.get(id) as { senderId?: unknown } | undefined)?.senderId === context.user.id,
		);
		sendAck(connection, held);
	}
}

import type { Span } from '@opentelemetry/api';
import type * as Y from 'yjs';
import { messageYjsSyncStep1 } from 'y-protocols/sync';
import { collabRejections } from '#protocol/errors.ts';
import type { ServerStateless } from '#protocol/stateless.ts';
import type { Metrics } from '../metrics.ts';
import { UpdateRejected, type UpdateJudgement } from './validation.ts';

/** The catch-up of one room: the run being prepared, the one in progress, when the last one started. */
export interface RoomCatchUp {
	next?: Promise<void>;
	running?: Promise<void>;
	started: number;
}

/** What the collaboration extensions know about one loaded room beyond its document. */
export interface LiveRoom {
	readonly roomId: string;
	readonly documentName: string;
	readonly document: Y.Doc;
	/** Keys being appended → the `client:clock` of their struct. */
	readonly reservedKeys: Map<string, string>;
	/** Keys being appended → the append's promise (durable once it resolves). */
	readonly appends: Map<string, Promise<void>>;
	/** The user each Yjs client id of the document is bound to: the first who wrote with it. */
	readonly owners: Map<number, string>;
	readonly catchUp: RoomCatchUp;
	/** The earliest createdAt an event of the room may carry (its creation less the clock skew). */
	readonly notBefore: number;
	/** Updates appended since the last compaction (this node's view). */
	appended: number;
}

/** One update between its validation and its durable append (the same `beforeSync` payload). */
export interface JudgedUpdate {
	judgement: UpdateJudgement;
	/** The update's trace (`chat.update`), ended by the append. */
	span: Span;
	receivedAt: number;
}

/**
 * The rooms this node has loaded, shared by the extensions of the update path (RoomLoader, RoomWindow,
 * UpdateValidation, DurableAppend, Compaction), the way Hocuspocus extensions share a document: each owns its
 * concern, and this registry holds the little state they have in common.
 */
export class LiveRooms {
	readonly #rooms = new Map<string, LiveRoom>();
	/** Hocuspocus hands every extension the same payload object: validation leaves its verdict here. */
	readonly judged = new WeakMap<object, JudgedUpdate>();

	get(documentName: string): LiveRoom | undefined {
		return this.#rooms.get(documentName);
	}

	add(room: LiveRoom): void {
		this.#rooms.set(room.documentName, room);
	}

	delete(documentName: string): void {
		this.#rooms.delete(documentName);
	}

	values(): IterableIterator<LiveRoom> {
		return this.#rooms.values();
	}
}

/** Whether a `beforeSync` payload is a client's update to judge and store: not sync step 1, not read-only. */
export function carriesUpdate(payload: { type: number; connection: { readOnly: boolean } }): boolean {
	return payload.type !== messageYjsSyncStep1 && !payload.connection.readOnly;
}

export function sendAck(connection: { sendStateless(payload: string): void }, clientMsgIds: string[]): void {
	if (clientMsgIds.length === 0) return;
	connection.sendStateless(JSON.stringify({ type: 'ack', clientMsgIds } satisfies ServerStateless));
}

/**
 * A refusal the client should simply retry (storage down, rate limit) closes the whole socket, not
 * just the room: the provider then reconnects with its own backoff and its sync step re-sends what
 * was refused. Closing only the room would leave the provider waiting for a reconnect that never comes.
 */
export function retryLater<E extends { code: number; reason: string }>(
	connection: { webSocket: { close(code?: number, reason?: string): void } },
	rejection: E,
): E {
	connection.webSocket.close(rejection.code, rejection.reason);
	return rejection;
}

/** Counts a refused update by its bare reason (`invalid-update`, `rate-limited`, …). */
export function countRejection(metrics: Metrics | undefined, error: unknown): void {
	const reason =
		error instanceof UpdateRejected
			? error.rejection
			: typeof (error as { reason?: unknown })?.reason === 'string'
				? (error as { reason: string }).reason
				: undefined;
	if (reason && Object.values(collabRejections).some((r) => r.reason === reason))
		metrics?.updatesRejected.inc({ reason });
}

import { z } from './zod.ts';
import { isoTimestamp } from './events.ts';
import { uuid } from './ids.ts';
import { limits } from './limits.ts';

/**
 * A read position on the wire: the newest message read, by its place in display order (createdAt, then
 * clientMsgId). A client compares places (`Place`: the same point with the time in ms, `compareOrder`);
 * `placeOf` and `positionOf` convert between the two.
 */
export const readPosition = z.strictObject({ at: isoTimestamp, clientMsgId: uuid });
export type ReadPosition = z.infer<typeof readPosition>;
/** A member's read position (the `reads` message, and the server's rows). */
export const memberReadPosition = readPosition.extend({ userId: uuid });
export type MemberReadPosition = z.infer<typeof memberReadPosition>;

/** A point in the display order, as `compareOrder` takes it. */
export interface Place {
	at: number;
	clientMsgId: string;
}

export const placeOf = (position: ReadPosition): Place => ({
	at: Date.parse(position.at),
	clientMsgId: position.clientMsgId,
});

export const positionOf = (place: Place): ReadPosition => ({
	at: new Date(place.at).toISOString(),
	clientMsgId: place.clientMsgId,
});

/**
 * Stateless messages from the server to one connection, as JSON strings.
 *
 * `ack` names the events of an update the server has made durable (in the append log and the
 * Postgres mirror) — sent before the update is applied and relayed. It covers new events and the
 * ones the server already held, so a client can mark every listed message as "on the server".
 */
export const serverStateless = z.discriminatedUnion('type', [
	z.strictObject({ type: z.literal('ack'), clientMsgIds: z.array(uuid) }),
	/** Members' read positions: all of them in answer to a `read`, then each one that moves forward. */
	z.strictObject({
		type: z.literal('reads'),
		reads: z.array(memberReadPosition),
	}),
]);
export type ServerStateless = z.infer<typeof serverStateless>;

/**
 * Stateless messages from a client to the server.
 *
 * `pending` asks which of the client's own messages the server already holds. A client sends it after each
 * sync with the ids it wrote that were never acknowledged: an ack can be lost when a node dies between the
 * durable append and the ack, and the next sync does not carry those messages again because the server
 * has them. The server answers with an `ack` naming the ones it holds (durable: a server's document only
 * ever contains what is in the append log); about the others it says nothing, and the sync acks them
 * when they arrive.
 */
export const clientStateless = z.discriminatedUnion('type', [
	z.strictObject({
		type: z.literal('pending'),
		clientMsgIds: z.array(uuid).min(1).max(limits.pendingIdsMax),
	}),
	/**
	 * The sender has read up to `position` (null: nothing yet). Sent after each sync and when the reader gets
	 * further. The server keeps the furthest position per member, answers the first one on a connection with every
	 * member's position, and
	 * tells the room when one moves.
	 */
	z.strictObject({ type: z.literal('read'), position: readPosition.nullable() }),
]);
export type ClientStateless = z.infer<typeof clientStateless>;

/** A JSON payload checked against `schema`, or null when it is not JSON or not what the schema describes. */
export function readJsonMessage<S extends z.ZodType>(schema: S, payload: string): z.infer<S> | null {
	let json: unknown;
	try {
		json = JSON.parse(payload);
	} catch {
		return null;
	}
	const parsed = schema.safeParse(json);
	return parsed.success ? parsed.data : null;
}

/** One handler per message type, each given the message of its type (and whatever `context` the caller adds). */
export type StatelessHandlers<M extends { type: string }, C = void, R = void> = {
	[T in M['type']]?: (message: Extract<M, { type: T }>, context: C) => R;
};

/**
 * Reads a payload once against `schema` and calls the handler of its type: the one dispatch of the server's
 * extension (server/collab/stateless-router.ts) and of the client's rooms. Returns what the handler returns;
 * `unknown` when the payload is not a message of `schema` (for a newer peer: ignored, as the protocol asks).
 */
export function dispatchStateless<M extends { type: string }, C, R>(
	schema: z.ZodType<M>,
	payload: string,
	handlers: StatelessHandlers<M, C, R>,
	context: C,
): R | 'unknown' | undefined {
	const message = readJsonMessage(schema, payload);
	if (!message) return 'unknown';
	const handler = handlers[message.type as M['type']] as ((m: M, c: C) => R) | undefined;
	return handler?.(message, context);
}

/** A client's stateless payload, or null when it is not JSON or not a message this protocol knows. */
export function readClientStateless(payload: string): ClientStateless | null {
	return readJsonMessage(clientStateless, payload);
}

/** The `pending` questions for these ids, split to the size the server accepts. */
export function pendingQuestions(ids: readonly string[]): string[] {
	const questions: string[] = [];
	for (let i = 0; i < ids.length; i += limits.pendingIdsMax) {
		const message: ClientStateless = {
			type: 'pending',
			clientMsgIds: ids.slice(i, i + limits.pendingIdsMax),
		};
		questions.push(JSON.stringify(message));
	}
	return questions;
}

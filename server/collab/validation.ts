import * as Y from 'yjs';
import { messagesMapName, roomEvent, type RoomEvent } from '#protocol/events.ts';
import { collabRejections } from '#protocol/errors.ts';
import { limits } from '#protocol/limits.ts';
import type { ContentFilter } from '#protocol/moderation.ts';
import { ParseError, parseUpdate } from './update-parser.ts';

/** A refused update: `code`/`reason` close the connection (Hocuspocus reads both); `detail` is for logs. */
export class UpdateRejected extends Error {
	readonly code: number;
	readonly reason: string;
	readonly detail: string;
	/** The bare reason of `collabRejections` (`invalid-update`, …), without the detail: a metrics label. */
	readonly rejection: string;

	constructor(rejection: { code: number; reason: string }, detail: string) {
		super(detail);
		this.code = rejection.code;
		this.rejection = rejection.reason;
		// A WebSocket close reason holds at most 123 bytes.
		this.reason = truncateUtf8(`${rejection.reason}: ${detail}`, 123);
		this.detail = detail;
	}
}

function truncateUtf8(text: string, maxBytes: number): string {
	const bytes = new TextEncoder().encode(text);
	if (bytes.length <= maxBytes) return text;
	return new TextDecoder().decode(bytes.subarray(0, maxBytes)).replace(/\uFFFD$/, '');
}

/**
 * An entry by another user that this node does not hold. An honest client re-sends such entries when it
 * got them from another node (or this node missed them on Redis): the caller looks for them in the
 * durable log before treating the update as a forgery.
 */
export class ForeignEntry extends UpdateRejected {}

/**
 * Edits, deletes or reactions whose target message the live document does not hold: it may have been trimmed
 * from the document into history (the caller looks in the mirror and judges again), or not be there yet.
 */
export class MissingTargets extends ForeignEntry {
	readonly targetIds: string[];
	constructor(targetIds: string[], kind: string) {
		super(collabRejections.invalidUpdate, `${kind} of a message the server does not hold`);
		this.targetIds = targetIds;
	}
}

/** A message the room's history (the Postgres mirror) holds, for targets trimmed from the document. */
export interface ArchivedMessage {
	kind: string;
	senderId: string;
}

const invalid = (detail: string) => new UpdateRejected(collabRejections.invalidUpdate, detail);

/**
 * The outcome of judging an update, as a value: accepted; refused for good; or refused for now because it names
 * entries this node does not hold (`lookFor`), which the caller may find (in history, in the durable log) and
 * judge again.
 */
export type Verdict =
	| { accepted: true; judgement: UpdateJudgement }
	| { accepted: false; rejection: UpdateRejected; lookFor?: { targetIds: string[] } | 'foreign-entry' };

/** `judgeUpdate` with its refusals as values (the checks themselves stop at the first problem by throwing). */
export function verdictOf(judge: () => UpdateJudgement): Verdict {
	try {
		return { accepted: true, judgement: judge() };
	} catch (error) {
		if (error instanceof MissingTargets)
			return { accepted: false, rejection: error, lookFor: { targetIds: error.targetIds } };
		if (error instanceof ForeignEntry) return { accepted: false, rejection: error, lookFor: 'foreign-entry' };
		if (error instanceof UpdateRejected) return { accepted: false, rejection: error };
		throw error;
	}
}

export interface UpdateJudgement {
	/** Events this update adds that the server does not hold yet, in update order. */
	events: RoomEvent[];
	/** The `client:clock` of the struct that carries each of `events`. */
	structIds: string[];
	/** Keys of entries in the update that the server already holds (re-sent by an honest client). */
	knownKeys: string[];
	/** Keys of structs another update is appending right now: durable once that append commits. */
	inFlightKeys: string[];
	/** Yjs client ids of the new structs, to bind to the writer once the update is accepted. */
	clients: number[];
}

/**
 * The owner of every Yjs client id in a loaded room: the sender of the entries written with it.
 * Built once when the document loads; the validator extends it as updates are accepted.
 */
export function clientOwners(doc: Y.Doc): Map<number, string> {
	const owners = new Map<number, string>();
	for (const item of doc.getMap(messagesMapName)._map.values()) {
		const value = item.content.getContent()[0] as { senderId?: unknown } | undefined;
		if (typeof value?.senderId === 'string') owners.set(item.id.client, value.senderId);
	}
	return owners;
}

/** What judgeUpdate judges an update against. */
export interface JudgeContext {
	doc: Y.Doc;
	userId: string;
	now: number;
	/** Keys being appended right now, with the `client:clock` of the struct that carries each. */
	reservedKeys: ReadonlyMap<string, string>;
	/** The user each Yjs client id of this document is bound to: the first who wrote with it. */
	owners: ReadonlyMap<number, string>;
	/** The server's content filter (moderation), if one is configured. */
	filter?: ContentFilter;
	/** The writer is a room owner or admin: may delete anyone's message. */
	canModerate?: boolean;
	/** Targets found in the room's history (trimmed from the document), by clientMsgId. */
	archived?: ReadonlyMap<string, ArchivedMessage>;
	/** The earliest `createdAt` accepted (ms): the room's creation less the allowed clock skew; 1970 if unset. */
	notBefore?: number;
}

/**
 * Judges a client's update against the server's copy of the room before it is applied or relayed.
 * Accepted: new keys in the `messages` map only, one schema-valid event each, written by the
 * connection's user, nothing deleted. Structs the server already holds (an honest client re-sending
 * what it received) are skipped, never re-judged or re-mirrored.
 */
export function judgeUpdate(update: Uint8Array, ctx: JudgeContext): UpdateJudgement {
	const parsed = parseClientUpdate(update);
	const messages = ctx.doc.getMap(messagesMapName);
	const expectedClock = new Map<number, number>();
	const keys = new Set<string>();
	const events: RoomEvent[] = [];
	const knownKeys: string[] = [];
	const inFlightKeys: string[] = [];
	const structIds: string[] = [];
	let pending: PendingRanges | undefined;

	for (const struct of parsed.structs) {
		const { client, clock } = struct.id;
		const held = Y.getState(ctx.doc.store, client);
		const next = expectedClock.get(client);
		if (next === undefined && clock + struct.length <= held) {
			// Already held by the server: not judged again, not mirrored again.
			if (struct.type === 'item' && struct.parentSub !== null) knownKeys.push(struct.parentSub);
			continue;
		}
		if (next === undefined && (pending ??= pendingRanges(ctx.doc)).covers(client, clock, struct.length)) {
			// Held too, but pending (it came before the history it follows): Hocuspocus hands pending structs to
			// every client in its sync step, so an honest client re-sends another user's; never judged as theirs.
			if (struct.type === 'item' && struct.parentSub !== null) knownKeys.push(struct.parentSub);
			continue;
		}
		// A struct may start past what the server holds: an honest provider's update can overtake the
		// sync step that carries the history before it, and Yjs keeps it pending until that arrives.
		// Overlapping what the server holds, or a gap inside one update, is never honest.
		if (next === undefined ? clock < held : clock !== next) {
			throw invalid('update overlaps the history the server holds');
		}
		expectedClock.set(client, clock + struct.length);
		const owner = ctx.owners.get(client);
		if (owner !== undefined && owner !== ctx.userId) {
			// Either a forgery, or another user's entries this node does not hold yet (see ForeignEntry).
			throw new ForeignEntry(collabRejections.invalidUpdate, 'this Yjs client id belongs to another user');
		}

		const { event, key } = newEntry(struct, ctx);
		if (ctx.reservedKeys.get(key) === `${client}:${clock}`) {
			// The very struct another update of this room is appending now (a client re-sending on a new
			// connection): it is not new, but not durable yet either; the caller waits for that append.
			inFlightKeys.push(key);
			continue;
		}
		if (messages.has(key) || keys.has(key) || ctx.reservedKeys.has(key)) {
			throw invalid('entries are written once: this clientMsgId already exists');
		}
		keys.add(key);
		// An event that follows history the server does not hold yet is stored, mirrored and acknowledged
		// now like any other: what the server holds in memory must always be in the durable log, or a later
		// re-send of it would be acknowledged as "already held" without ever having been stored.
		events.push(event);
		structIds.push(`${client}:${clock}`);
	}
	checkTargets(events, messages, ctx);
	return { events, structIds, knownKeys, inFlightKeys, clients: [...expectedClock.keys()] };
}

/** The bytes of a client's update, parsed: not too large, well-formed, deleting nothing. */
function parseClientUpdate(update: Uint8Array): ReturnType<typeof parseUpdate> {
	if (update.length > limits.updateBytesMax) {
		throw new UpdateRejected(
			collabRejections.updateTooLarge,
			`update of ${update.length} bytes exceeds ${limits.updateBytesMax}`,
		);
	}
	let parsed;
	try {
		parsed = parseUpdate(update);
	} catch (error) {
		if (error instanceof ParseError) throw invalid(error.message);
		throw error;
	}
	if (parsed.deletes.length > 0) throw invalid('messages are append-only: an update may not delete anything');
	return parsed;
}

type ParsedStruct = ReturnType<typeof parseUpdate>['structs'][number];

/** A struct the server does not hold, as the one new event it must be: a new `messages` key, by the writer. */
function newEntry(struct: ParsedStruct, ctx: JudgeContext): { event: RoomEvent; key: string } {
	if (struct.type !== 'item') throw invalid('update carries garbage-collected or skipped ranges');
	if (struct.origin || struct.rightOrigin)
		throw invalid('entries are written once: an existing key may not be overwritten');
	if (struct.parent?.kind !== 'root' || struct.parent.name !== messagesMapName || struct.parentSub === null) {
		throw invalid(`only new keys of the "${messagesMapName}" map may be written`);
	}
	if (struct.length !== 1) throw invalid('a map entry holds exactly one value');

	const result = roomEvent.safeParse(struct.values[0]);
	if (!result.success) {
		const issue = result.error.issues[0];
		throw invalid(`event ${issue?.path.join('.') || 'value'}: ${issue?.message ?? 'invalid'}`);
	}
	const event = result.data;
	const key = struct.parentSub;
	if (event.clientMsgId !== key) throw invalid('the key of an event must be its clientMsgId');
	if (event.senderId !== ctx.userId)
		throw new ForeignEntry(collabRejections.invalidUpdate, "senderId must be the sender's own user id");
	if ('content' in event && ctx.filter && ctx.filter.blocked(event.content).length > 0) {
		throw invalid(
			ctx.filter.mode === 'mask'
				? "content must be masked by the server's content filter before it is sent"
				: "content contains words this server's content filter does not accept",
		);
	}
	const createdAt = Date.parse(event.createdAt);
	if (createdAt > ctx.now + limits.maxClockSkewMs) {
		throw invalid(`createdAt is more than ${limits.maxClockSkewMs / 60_000} minutes in the future`);
	}
	// Before the room existed is back-dating (it would sort to the top of the room), and years Postgres
	// cannot store (0000) would fail the whole batch of other writers' updates.
	if (!(createdAt >= (ctx.notBefore ?? 0))) throw invalid('createdAt is before the room existed');
	return { event, key };
}

/**
 * Edits, deletes and reactions must point at a message the server holds (or one this update adds); edits only
 * at the writer's own, deletes at the writer's own unless the writer moderates the room.
 */
function checkTargets(
	events: RoomEvent[],
	messages: Y.Map<unknown>,
	ctx: { userId: string; canModerate?: boolean; archived?: ReadonlyMap<string, ArchivedMessage> },
): void {
	const added = new Map(events.map((e) => [e.clientMsgId, e]));
	const missing: RoomEvent[] = [];
	for (const event of events) {
		if (event.kind === 'message') continue;
		const target = (added.get(event.targetId) ??
			messages.get(event.targetId) ??
			ctx.archived?.get(event.targetId)) as { kind?: unknown; senderId?: unknown } | undefined;
		if (target === undefined) {
			missing.push(event);
			continue;
		}
		if (target.kind !== 'message') throw invalid(`${event.kind} must target a message`);
		if (event.kind === 'edit' && target.senderId !== ctx.userId) {
			throw invalid('only its sender may edit a message');
		}
		if (event.kind === 'delete' && target.senderId !== ctx.userId && !ctx.canModerate) {
			throw invalid('only its sender or a room owner or admin may delete a message');
		}
	}
	if (missing.length > 0) {
		// Possibly trimmed into history, or not received yet: the caller looks in the mirror and the durable log.
		throw new MissingTargets(
			missing.map((e) => (e as { targetId: string }).targetId),
			missing[0]?.kind ?? 'event',
		);
	}
}

interface PendingRanges {
	/** Whether the server holds `[clock, clock + length)` of `client` among its pending structs. */
	covers(client: number, clock: number, length: number): boolean;
}

/**
 * The clock ranges of the structs a server document holds pending (they arrived before the history they follow;
 * Yjs integrates them once it does). The pending update is the server's own encoding (V2) of updates it applied
 * with `Y.applyUpdate` first, never bytes as a client sent them, so reading it through Yjs is safe.
 */
function pendingRanges(doc: Y.Doc): PendingRanges {
	const update = doc.store.pendingStructs?.update;
	if (!update) return { covers: () => false };
	const ranges = new Map<number, [number, number][]>();
	for (const struct of parseUpdate(Y.convertUpdateFormatV2ToV1(update)).structs) {
		if (struct.type === 'skip') continue;
		const list = ranges.get(struct.id.client) ?? [];
		list.push([struct.id.clock, struct.id.clock + struct.length]);
		ranges.set(struct.id.client, list);
	}
	// Adjacent structs of one client may come split differently in the pending update and in a client's re-send.
	for (const [client, list] of ranges) {
		list.sort((a, b) => a[0] - b[0]);
		const merged: [number, number][] = [];
		for (const range of list) {
			const last = merged.at(-1);
			if (last && range[0] <= last[1]) last[1] = Math.max(last[1], range[1]);
			else merged.push([range[0], range[1]]);
		}
		ranges.set(client, merged);
	}
	return {
		covers: (client, clock, length) =>
			(ranges.get(client) ?? []).some(([from, to]) => from <= clock && clock + length <= to),
	};
}

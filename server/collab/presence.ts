import type {
	beforeHandleAwarenessPayload,
	beforeHandleMessagePayload,
	Connection,
	Document,
	Extension,
} from '@hocuspocus/server';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import type { Logger } from 'pino';
import { removeAwarenessStates } from 'y-protocols/awareness';
import { colorFor } from '#protocol/awareness.ts';
import type { CollabContext } from './authentication.ts';
import { limits } from '#protocol/limits.ts';

const AWARENESS_MESSAGE = 1;
/** A presence state is a name, a colour and a flag; anything bigger is not one. */
/**
 * A connection's presence goes out (to this node's members and to Redis) at most once per this many ms; what it
 * sends faster is coalesced into its latest state, sent at the end of the interval. Typing indicators stay live.
 */
export const PRESENCE_INTERVAL_MS = 200;

interface Pace {
	/** When this connection's presence last went out. */
	last: number;
	/** The latest state that came too soon, with its clock, and the timer that sends it. */
	pending?: { clientId: number; clock: number; state: unknown };
	timer?: ReturnType<typeof setTimeout>;
}

/**
 * Presence that tells the truth: every awareness state a connection sends is rewritten to
 * `{ user: { id, name, color }, typing }` with the identity of the authenticated user, unknown fields
 * and oversized states are dropped, a connection speaks for one awareness client id only and cannot write the
 * awareness client id of another connection, and an explicit leave (state `null`) removes the user at once — Hocuspocus 4.7 alone
 * keeps them "online" until the 30 s timeout.
 */
export class Presence implements Extension {
	readonly extensionName = 'presence';
	readonly #log: Logger;
	/** The client ids (and clocks) of the awareness frame each connection is sending right now (see beforeHandleMessage). */
	readonly #frames = new WeakMap<object, AwarenessFrame>();
	readonly #pace = new WeakMap<Connection, Pace>();

	constructor(log: Logger) {
		this.#log = log.child({ component: 'presence' });
	}

	async beforeHandleAwareness({
		states,
		context,
		connection,
		document,
	}: beforeHandleAwarenessPayload<CollabContext>) {
		if (!context?.user || !connection) return;
		// One presence per connection: the client id it first spoke for, or the first one of this frame. A frame
		// of 20,000 client ids would otherwise go out to every member (and node) as 20,000 states. (Without our
		// `scratchAwareness: false`, `states` also holds the local state of the scratch Awareness Hocuspocus decodes
		// into: never one the client sent.)
		const frame = this.#frames.get(connection);
		const sent = frame?.clients ?? [];
		this.#frames.delete(connection);
		takeOver(document, connection, context.user.id, sent[0] ?? states.keys().next().value);
		// Whether another connection speaks for a client id. A frame almost always carries one: each connection is
		// asked then; the set of every other connection's ids is built only for a frame of several (a hostile one
		// may carry a thousand).
		const several = states.size > 1 || sent.length > 1;
		let others: Set<number> | undefined;
		const ownedElsewhere = (clientId: number): boolean => {
			if (several) {
				others ??= otherClients(document, connection);
				return others.has(clientId);
			}
			for (const [other, entry] of document.connections)
				if (other !== connection && entry.clients.has(clientId)) return true;
			return false;
		};
		const own = document.connections.get(connection)?.clients;
		const mine =
			own && own.size > 0
				? (own.values().next().value as number)
				: sent.find((id) => !ownedElsewhere(id) && states.has(id));
		let extra = 0;
		for (const clientId of [...states.keys()]) {
			if (clientId === mine || ownedElsewhere(clientId)) continue;
			states.delete(clientId);
			if (sent.includes(clientId)) extra++;
		}
		if (sent.length >= MAX_FRAME_CLIENTS) extra = Math.max(extra, sent.length);
		if (extra > 0)
			this.#log.warn(
				{ userId: context.user.id, dropped: extra },
				'awareness for more than one client id dropped',
			);
		for (const [clientId, state] of states) {
			if (ownedElsewhere(clientId)) {
				states.delete(clientId);
				this.#log.warn({ userId: context.user.id, clientId }, 'awareness for another connection dropped');
				continue;
			}
			const size = JSON.stringify(state ?? null).length;
			if (typeof state !== 'object' || state === null || size > limits.awarenessStateBytesMax) {
				states.delete(clientId);
				this.#log.warn(
					{ userId: context.user.id, bytes: size },
					'malformed or oversized awareness state dropped',
				);
				continue;
			}
			const user = (state as { user?: { color?: unknown } }).user;
			const color =
				typeof user?.color === 'string' && /^#[0-9a-f]{6}$/i.test(user.color)
					? user.color
					: colorFor(context.user.id);
			states.set(clientId, {
				user: { id: context.user.id, name: context.user.name, color },
				typing: (state as { typing?: unknown }).typing === true,
			});
		}
		this.#paceOut(states, connection, document, frame);
	}

	/**
	 * At most one presence per connection per PRESENCE_INTERVAL_MS goes out: one that comes sooner waits for the
	 * interval's end, replacing any that was already waiting. Whatever a connection sends, what leaves the server
	 * for it is then at most one small state per interval, to each member and to each node.
	 */
	#paceOut(
		states: Map<number, unknown>,
		connection: Connection,
		document: Document,
		frame: AwarenessFrame | undefined,
	): void {
		const [entry] = states;
		if (!entry) return;
		const [clientId, state] = entry;
		const now = Date.now();
		const pace = this.#pace.get(connection) ?? { last: 0 };
		this.#pace.set(connection, pace);
		if (!pace.timer && now - pace.last >= PRESENCE_INTERVAL_MS) {
			pace.last = now;
			return;
		}
		const clock = frame?.clocks.get(clientId);
		states.delete(clientId);
		if (clock === undefined) return;
		pace.pending = { clientId, clock, state };
		pace.timer ??= setTimeout(
			() => {
				pace.timer = undefined;
				const pending = pace.pending;
				pace.pending = undefined;
				// Gone meanwhile (closed, or left): nothing to send.
				if (!pending || !document.connections.has(connection)) return;
				pace.last = Date.now();
				document.applyAwarenessUpdate(connection, encodeState(pending));
			},
			Math.max(0, pace.last + PRESENCE_INTERVAL_MS - now),
		);
	}

	/** A connection that leaves takes its waiting presence with it (one that closes: see the timer). */
	#dropPending(connection: Connection): void {
		const pace = this.#pace.get(connection);
		if (!pace) return;
		clearTimeout(pace.timer);
		pace.timer = undefined;
		pace.pending = undefined;
	}

	/**
	 * Notes which client ids an awareness frame speaks for (beforeHandleAwareness keeps one of them), and applies a
	 * client's explicit leave (an awareness state of `null` for its own client id) at once.
	 */
	async beforeHandleMessage({ connection, document, update }: beforeHandleMessagePayload<CollabContext>) {
		const frame = readAwarenessFrame(update);
		if (!frame) return;
		this.#frames.set(connection, frame);
		const left = frame.left;
		if (left.length === 0) return;
		this.#dropPending(connection);
		const own = document.connections.get(connection)?.clients;
		const ids = left.filter((id) => own?.has(id));
		if (ids.length > 0) removeAwarenessStates(document.awareness, ids, { source: 'connection', connection });
	}
}

/**
 * A device that reconnects before the server has seen its old socket go (a dropped network: until the 30-s
 * timeout) speaks again for its client id, which the connection left behind still holds: without this its
 * presence and typing were dropped until then, and the old connection's close then took the user out. A
 * connection that speaks for no client id yet takes over the first client id of its frame (`id`) from another
 * connection of the same user that holds it; that one no longer removes it when it closes. Another user's client
 * id stays theirs. One pass over the document's connections, as for any single-client frame.
 */
function takeOver(document: Document, connection: Connection, userId: string, id: number | undefined): void {
	const own = document.connections.get(connection)?.clients;
	if (id === undefined || !own || own.size > 0) return;
	for (const [other, entry] of document.connections) {
		if (other === connection || !entry.clients.has(id)) continue;
		if ((other.context as CollabContext | undefined)?.user?.id !== userId) return;
		entry.clients.delete(id);
		own.add(id);
		return;
	}
}

/** The client ids the document's connections other than `connection` speak for. */
function otherClients(document: Document, connection: Connection): Set<number> {
	const ids = new Set<number>();
	for (const [other, entry] of document.connections)
		if (other !== connection) for (const id of entry.clients) ids.add(id);
	return ids;
}

/** An awareness frame's client ids are read up to this many; the rest are dropped with all but one anyway. */
const MAX_FRAME_CLIENTS = 1_000;

interface AwarenessFrame {
	clients: number[];
	clocks: Map<number, number>;
	left: number[];
}

/**
 * The client ids an awareness frame speaks for, with their clocks, and those whose state is `null` (leaving); null
 * for any other or malformed frame.
 */
function readAwarenessFrame(frame: Uint8Array): AwarenessFrame | null {
	try {
		const decoder = decoding.createDecoder(frame);
		decoding.readVarString(decoder);
		if (decoding.readVarUint(decoder) !== AWARENESS_MESSAGE) return null;
		const update = decoding.createDecoder(decoding.readVarUint8Array(decoder));
		const count = decoding.readVarUint(update);
		const clients: number[] = [];
		const clocks = new Map<number, number>();
		const left: number[] = [];
		for (let i = 0; i < count && i < MAX_FRAME_CLIENTS; i++) {
			const clientId = decoding.readVarUint(update);
			clocks.set(clientId, decoding.readVarUint(update));
			clients.push(clientId);
			if (decoding.readVarString(update) === 'null') left.push(clientId);
		}
		return { clients, clocks, left };
	} catch {
		// Not a well-formed awareness frame: Hocuspocus itself rejects or ignores it.
		return null;
	}
}

/** One client's state as an awareness update (y-protocols' encoding: count, then id, clock and JSON each). */
function encodeState({
	clientId,
	clock,
	state,
}: {
	clientId: number;
	clock: number;
	state: unknown;
}): Uint8Array {
	const encoder = encoding.createEncoder();
	encoding.writeVarUint(encoder, 1);
	encoding.writeVarUint(encoder, clientId);
	encoding.writeVarUint(encoder, clock);
	encoding.writeVarString(encoder, JSON.stringify(state));
	return encoding.toUint8Array(encoder);
}

import type { Socket } from 'node:net';
import type { Document, Extension } from '@hocuspocus/server';

/** What Hocuspocus uses of a WebSocket: its state, sending and closing. */
export interface WebSocketLike {
	readonly readyState: number;
	send(data: Uint8Array): void;
	close(code?: number, reason?: string): void;
}

/** The TCP sockets corked in this turn, uncorked together at its end. */
const corked: Socket[] = [];
let uncorkScheduled = false;

/** Told after each pass of uncorks: only the benchmarks' stage clock listens (bench/stage-clock.ts). */
export const uncorkObservers: (() => void)[] = [];

function uncorkAll(): void {
	uncorkScheduled = false;
	for (const socket of corked.splice(0)) socket.uncork();
	for (const observer of uncorkObservers) observer();
}

/**
 * Relays every change a document applies in the turn it applied it. Hocuspocus relays what a document applied at
 * the turn's end, in a `setImmediate` flush: the pass of uncorks is then either an earlier immediate of the same
 * turn (scheduled by the turn's first frame, after a commit the writer's ack) or one the flush schedules itself,
 * from inside the check phase, which runs a turn later. Either way the relay's frames waited in their corked sockets
 * for the next turn's pass, behind whatever I/O that turn handled. So on every update and presence a document
 * applies, whoever applied it (a client's frame after its hooks, another node through Redis, the server itself), a
 * tick flushes the document: it runs once the promise steps that apply a frame are done, still in this turn (a
 * flush with nothing pending does nothing).
 */
export const relayInTheTurn: Extension = {
	extensionName: 'relay-in-the-turn',
	async afterLoadDocument({ document }) {
		const relay = () => process.nextTick(flush, document);
		document.on('update', relay);
		document.awareness.on('update', relay);
	},
};

function flush(document: Document): void {
	document.flush();
}

/**
 * The `ws` WebSocket of a crossws peer. crossws hands it out behind a Proxy (`peer.websocket`) whose trap runs on
 * every property read, two for each frame sent (`readyState`, `send`); its node adapter keeps the WebSocket itself
 * as `_internal.ws`. Without that (another adapter or version), the Proxy.
 */
export function peerWebSocket(peer: { websocket: unknown }): WebSocketLike {
	const own = (peer as { _internal?: { ws?: Partial<WebSocketLike> } })._internal?.ws;
	return (typeof own?.send === 'function' ? own : peer.websocket) as WebSocketLike;
}

/**
 * A WebSocket whose frames of one turn of the event loop leave in one write. Each frame `ws` sends is a `writev`
 * of its own, and the node sends a socket several in a turn often enough (an update and the room's read positions,
 * activity for two rooms, an ack and an awareness change): a fifth of the writes at 6,000 users
 * (docs/benchmarks.md, "Frames per write"), and the write is the server's busiest function. The first frame of a
 * turn corks the TCP socket; the end of the turn (`setImmediate`, after the I/O callbacks that sent them) uncorks
 * every socket corked, in one pass. What a frame waits is the rest of the turn that sent it, never a timer.
 */
export class TurnBatchedSocket implements WebSocketLike {
	readonly #ws: WebSocketLike;
	/** The connection's TCP socket: `ws`'s own (`_socket`, set once the upgrade is done, as it is when we get it). */
	readonly #socket: Socket | undefined;

	constructor(ws: WebSocketLike) {
		this.#ws = ws;
		const socket = (ws as { _socket?: Socket })._socket;
		// Without one (another `ws` inside crossws), frames go out one by one, as before.
		this.#socket = typeof socket?.cork === 'function' ? socket : undefined;
	}

	get readyState(): number {
		return this.#ws.readyState;
	}

	send(data: Uint8Array): void {
		const socket = this.#socket;
		// `ws` corks and uncorks around each frame itself: ours is the outer cork, so its uncork does not write.
		if (socket && socket.writableCorked === 0 && !socket.destroyed) {
			socket.cork();
			corked.push(socket);
			if (!uncorkScheduled) {
				uncorkScheduled = true;
				setImmediate(uncorkAll);
			}
		}
		this.#ws.send(data);
	}

	close(code?: number, reason?: string): void {
		this.#ws.close(code, reason);
	}
}

import http from 'node:http';
import type { Socket } from 'node:net';
import crossws from 'crossws/adapters/node';
import { afterEach, describe, expect, it } from 'vitest';
import { types } from 'node:util';
import {
	peerWebSocket,
	TurnBatchedSocket,
	type WebSocketLike,
} from '../../server/collab/turn-batched-socket.ts';

const opened: (() => void)[] = [];
afterEach(() => {
	for (const close of opened.splice(0)) close();
});

interface ServerSide {
	/** The server's end of the connection, as Hocuspocus gets it: raw, or batched per turn. */
	send(data: Uint8Array): void;
	/** Writes the server's TCP socket made so far (each a `write` or `writev` system call). */
	writes(): number;
}

/**
 * A crossws server (as server/collab/collab.ts runs it) and a client connected to it; the server side counts the
 * writes its TCP socket makes.
 */
async function connected(batched: boolean): Promise<{ server: ServerSide; received: () => string[] }> {
	let resolveServer: (side: ServerSide) => void = () => {};
	const serverSide = new Promise<ServerSide>((resolve) => (resolveServer = resolve));
	const ws = crossws({
		hooks: {
			open(peer) {
				const websocket = peer.websocket as unknown as WebSocketLike;
				const socket = (websocket as unknown as { _socket: Socket & Record<string, unknown> })._socket;
				let writes = 0;
				for (const name of ['_write', '_writev'] as const) {
					const original = socket[name] as (...args: unknown[]) => void;
					socket[name] = (...args: unknown[]) => {
						writes++;
						original.apply(socket, args);
					};
				}
				const side = batched ? new TurnBatchedSocket(websocket) : websocket;
				resolveServer({ send: (data) => side.send(data), writes: () => writes });
			},
		},
	});
	const server = http.createServer();
	server.on('upgrade', (request, socket, head) => void ws.handleUpgrade(request, socket, head));
	await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
	const { port } = server.address() as { port: number };
	const client = new WebSocket(`ws://127.0.0.1:${port}`);
	client.binaryType = 'arraybuffer';
	const messages: string[] = [];
	client.onmessage = (event) => messages.push(new TextDecoder().decode(event.data as ArrayBuffer));
	opened.push(() => {
		client.close();
		ws.closeAll();
		server.close();
	});
	return { server: await serverSide, received: () => messages };
}

const frame = (text: string) => new TextEncoder().encode(text);

async function until(condition: () => boolean): Promise<void> {
	for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
	expect(condition()).toBe(true);
}

describe('TurnBatchedSocket', () => {
	it('sends the frames of one turn in one write, in order', async () => {
		const { server, received } = await connected(true);
		const before = server.writes();
		for (const text of ['update', 'reads', 'ack']) server.send(frame(text));
		await until(() => received().length === 3);
		expect(received()).toEqual(['update', 'reads', 'ack']);
		expect(server.writes() - before).toBe(1);
	});

	it('is what makes it one write: the WebSocket alone writes each frame on its own', async () => {
		const { server, received } = await connected(false);
		const before = server.writes();
		for (const text of ['update', 'reads', 'ack']) server.send(frame(text));
		await until(() => received().length === 3);
		expect(server.writes() - before).toBe(3);
	});

	it('holds no frame past its turn: one sent alone arrives without another after it', async () => {
		const { server, received } = await connected(true);
		server.send(frame('alone'));
		await until(() => received().length === 1);
		await new Promise((resolve) => setImmediate(resolve));
		server.send(frame('next turn'));
		await until(() => received().length === 2);
		expect(received()).toEqual(['alone', 'next turn']);
	});
});

describe('peerWebSocket', () => {
	it("is the peer's WebSocket itself, not crossws's Proxy of it", async () => {
		let resolvePeer: (peer: { websocket: unknown }) => void = () => {};
		const opened = new Promise<{ websocket: unknown }>((resolve) => (resolvePeer = resolve));
		const ws = crossws({ hooks: { open: (peer) => resolvePeer(peer as unknown as { websocket: unknown }) } });
		const server = http.createServer();
		server.on('upgrade', (request, socket, head) => void ws.handleUpgrade(request, socket, head));
		await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
		const client = new WebSocket(`ws://127.0.0.1:${(server.address() as { port: number }).port}`);
		try {
			const peer = await opened;
			const own = peerWebSocket(peer);
			expect(types.isProxy(peer.websocket)).toBe(true);
			expect(types.isProxy(own)).toBe(false);
			// The same WebSocket: the Proxy's reads reach it.
			expect((own as unknown as { _socket: unknown })._socket).toBe(
				(peer.websocket as { _socket: unknown })._socket,
			);
			expect(own.readyState).toBe(1);
		} finally {
			client.close();
			ws.closeAll();
			server.close();
		}
	});

	it('falls back to the Proxy where crossws keeps no WebSocket of its own', () => {
		const websocket = { readyState: 1, send() {}, close() {} };
		expect(peerWebSocket({ websocket })).toBe(websocket);
	});
});

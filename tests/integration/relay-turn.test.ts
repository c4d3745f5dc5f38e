import { Socket } from 'node:net';
import type { Extension } from '@hocuspocus/server';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { ClusterRelay } from '../../server/collab/cluster-relay.ts';
import { describeEachBackend } from '../helpers/backends.ts';
import { canRunCluster } from '../helpers/cluster.ts';
import { twoMembersConnected, waitFor, type TestClient } from '../helpers/collab.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

interface Write {
	text: string;
	/** The turn of the event loop it was written in (countTurns), when one is counted. */
	turn?: number;
	/** Which pass of uncorks wrote it (a run of `uncork` calls with no promise step between): -1 for none. */
	pass: number;
}

type Chunk = string | Uint8Array;
type WritableInternals = {
	uncork(): void;
	_write(chunk: Chunk, encoding: BufferEncoding, callback: () => void): void;
	_writev(chunks: { chunk: Chunk }[], callback: () => void): void;
};

/**
 * Records every TCP write of this process (the server's and the clients') with the pass of uncorks it came from:
 * the server corks a socket at its first frame of a turn and uncorks every corked socket in one pass at the turn's
 * end (server/collab/turn-batched-socket.ts). Returns what was written and a function that stops recording.
 */
function recordWrites(turn?: () => number): { writes: Write[]; stop(): void } {
	const proto = Socket.prototype as unknown as WritableInternals;
	const original = { uncork: proto.uncork, _write: proto._write, _writev: proto._writev };
	const writes: Write[] = [];
	let pass = 0;
	let inPass = false;
	const record = (chunks: Chunk[]) =>
		writes.push({
			text: chunks.map((c) => (typeof c === 'string' ? c : Buffer.from(c).toString('latin1'))).join(''),
			pass: inPass ? pass : -1,
			turn: turn?.(),
		});
	proto.uncork = function (this: Socket) {
		if (!inPass) {
			inPass = true;
			pass++;
			queueMicrotask(() => (inPass = false));
		}
		original.uncork.call(this);
	};
	proto._write = function (this: Socket, chunk, encoding, callback) {
		record([chunk]);
		original._write.call(this, chunk, encoding, callback);
	};
	proto._writev = function (this: Socket, chunks, callback) {
		record(chunks.map((c) => c.chunk));
		original._writev.call(this, chunks, callback);
	};
	return { writes, stop: () => Object.assign(proto, original) };
}

/** A write that starts with a WebSocket frame the server sends: binary, final (not a statement to Postgres). */
const isFrame = (write: Write) => write.text.charCodeAt(0) === 0x82;

/**
 * Counts the turns of the event loop: an immediate that schedules itself runs once in each turn's check phase,
 * before anything the turn's I/O scheduled there.
 */
function countTurns(): { turn(): number; stop(): void } {
	let turn = 0;
	let handle = setImmediate(function tick() {
		turn++;
		handle = setImmediate(tick);
	});
	return { turn: () => turn, stop: () => clearImmediate(handle) };
}

/**
 * An accepted update is relayed in the turn its commit completes: the relay's frames leave in the same pass of
 * writes as the writer's acknowledgement, not a turn later behind whatever I/O that turn handles.
 */
describeEachBackend('the relay of an accepted update', (backend) => {
	let server: TestServer;
	const clients: TestClient[] = [];

	beforeAll(async () => {
		server = await startTestServer(backend);
	});
	afterEach(() => {
		for (const c of clients.splice(0)) c.destroy();
	});
	afterAll(async () => {
		await server?.close();
	});

	it('leaves in the same pass of writes as the ack, in the turn the commit completed', async () => {
		const { a, b } = await twoMembersConnected(server, clients);
		for (let i = 0; i < 3; i++) {
			const marker = `relayed in the commit's turn ${i} ${crypto.randomUUID()}`;
			const recording = recordWrites();
			let sent;
			try {
				sent = a.send(marker);
				await waitFor(
					() => b.messages().some((m) => m.content === marker) && a.acked.has(sent!.clientMsgId),
					10_000,
					'the relay and the ack',
				);
			} finally {
				recording.stop();
			}
			// Client frames are masked: only the server's frames show their text (and its statement to Postgres).
			const ack = recording.writes.find((w) => isFrame(w) && w.text.includes(sent.clientMsgId));
			const relay = recording.writes.find((w) => isFrame(w) && w.text.includes(marker));
			expect(ack?.pass, 'the ack left in a pass of uncorks').toBeGreaterThan(0);
			expect(relay?.pass, 'the relay left in the same pass as the ack').toBe(ack?.pass);
		}
	});

	it('relays a presence change in the turn it arrived', async () => {
		const { a, b } = await twoMembersConnected(server, clients);
		const hocuspocus = server.app.collab.hocuspocus;
		for (let i = 0; i < 3; i++) {
			// Past the pacing interval (server/collab/presence.ts): a change that comes sooner is held back.
			await new Promise((resolve) => setTimeout(resolve, 250));
			const color = `#a${i}b${i}c${i}`;
			const turns = countTurns();
			const recording = recordWrites(turns.turn);
			let arrived = -1;
			const spy: Extension = {
				extensionName: 'relay-turn-spy',
				async beforeHandleAwareness({ states }) {
					if ([...states.values()].some((s) => JSON.stringify(s).includes(color))) arrived = turns.turn();
				},
			};
			hocuspocus.configuration.extensions.unshift(spy);
			try {
				a.provider.awareness?.setLocalState({ user: { color }, typing: true });
				await waitFor(
					() =>
						[...(b.provider.awareness?.getStates().values() ?? [])].some(
							(s) => (s as { user?: { color?: string } }).user?.color === color,
						),
					10_000,
					'the presence at the other member',
				);
			} finally {
				recording.stop();
				turns.stop();
				hocuspocus.configuration.extensions.splice(hocuspocus.configuration.extensions.indexOf(spy), 1);
			}
			// The counter moves first in each turn's check phase: a write there in the turn the frame was read in
			// counts one more than the read; a turn later, two more.
			const relay = recording.writes.find((w) => isFrame(w) && w.text.includes(color));
			expect(arrived, 'the presence reached the server').toBeGreaterThanOrEqual(0);
			expect(relay?.turn, 'the relay left in the turn the presence arrived').toBe(arrived + 1);
		}
	});
});

/**
 * What another node relays through Redis is applied by the Redis extension itself, past the update path's hooks:
 * its relay to this node's connections leaves in the turn the message from Redis was read, too.
 */
describe.skipIf(!canRunCluster)('the relay of an update from another node', () => {
	const nodes: TestServer[] = [];
	const clients: TestClient[] = [];

	beforeAll(async () => {
		const env = {
			REDIS_URL: inject('redisUrl') as string,
			REDIS_PREFIX: `chat-test-${randomBytes(4).toString('hex')}`,
			JWT_SECRET: 'relay-turn-secret-for-this-test-0123456789',
		};
		nodes.push(await startTestServer('postgres', env));
		nodes.push(await startTestServer('postgres', env, { databaseUrl: nodes[0]!.databaseUrl }));
	}, 60_000);
	afterAll(async () => {
		for (const c of clients.splice(0)) c.destroy();
		// The first node owns the database: it goes last.
		for (const node of nodes.reverse()) await node.close();
	});

	it('leaves in the turn the message from Redis was read', async () => {
		const [one, two] = nodes as [TestServer, TestServer];
		const { a, b } = await twoMembersConnected(one, clients, two);
		const relay = two.app.collab.hocuspocus.configuration.extensions.find((e) => e instanceof ClusterRelay);
		const subscriber = (relay as unknown as { sub: NodeJS.EventEmitter }).sub;
		for (let i = 0; i < 3; i++) {
			const marker = `relayed from another node ${i} ${crypto.randomUUID()}`;
			const turns = countTurns();
			const recording = recordWrites(turns.turn);
			const arrivals: { text: string; turn: number }[] = [];
			const arrived = (_channel: Buffer, data: Buffer) =>
				arrivals.push({ text: data.toString('latin1'), turn: turns.turn() });
			subscriber.prependListener('messageBuffer', arrived);
			try {
				a.send(marker);
				await waitFor(
					() => b.messages().some((m) => m.content === marker),
					10_000,
					'the message on node two',
				);
			} finally {
				subscriber.off('messageBuffer', arrived);
				recording.stop();
				turns.stop();
			}
			const read = arrivals.find((m) => m.text.includes(marker));
			const written = recording.writes.find((w) => isFrame(w) && w.text.includes(marker));
			expect(read, 'the update came through Redis').toBeDefined();
			expect(written?.turn, 'the relay left in the turn Redis brought it').toBe(read!.turn + 1);
		}
	});
});

/**
 * `npm run bench:frame-writes`: what sending a socket's frames of one turn in one write (TurnBatchedSocket,
 * server/collab/turn-batched-socket.ts) saves the server, against sending each frame on its own, in one run.
 *
 * This process is the server: crossws on a plain HTTP server, as server/collab/collab.ts runs it, pinned to the
 * server's core. A child process on the other core opens SOCKETS WebSocket clients and reads what they get. Then
 * phases alternate between the two ways of sending (PHASES of each, PHASE_MS long): turn after turn, the server
 * sends a frame to TURN_SOCKETS sockets, and a second one, from another callback of the same turn, to a share
 * SECOND_SHARE of them (the node sent 1.26 frames per socket and turn at 6,000 users of bench:capacity). Each
 * phase's server CPU (user and system: on loopback the kernel's work for both ends of a write is mostly the
 * writer's) is divided by the frames it sent; the table gives the median of each way and their ratio.
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import type { Socket } from 'node:net';
import crossws from 'crossws/adapters/node';
import { TurnBatchedSocket, type WebSocketLike } from '../server/collab/turn-batched-socket.ts';
import { median } from './common.ts';
import { envNumber, fmt, pin, writeResult } from './harness.ts';

const SOCKETS = envNumber('SOCKETS', 2_000);
const TURN_SOCKETS = envNumber('TURN_SOCKETS', 100);
const SECOND_SHARE = envNumber('SECOND_SHARE', 0.26);
const PHASES = envNumber('PHASES', 5);
const PHASE_MS = envNumber('PHASE_MS', 2_000);
const FRAME_BYTES = 90;

type Sender = { send(data: Uint8Array): void };

if (process.argv.includes('--clients')) {
	const [url, count] = [String(process.argv[3]), Number(process.argv[4])];
	let received = 0;
	let open = 0;
	for (let i = 0; i < count; i++) {
		const socket = new WebSocket(url);
		socket.binaryType = 'arraybuffer';
		socket.onopen = () => {
			if (++open === count) process.send?.({ type: 'open' });
		};
		socket.onmessage = () => void received++;
	}
	process.on('message', () => process.send?.({ type: 'received', received }));
} else {
	await main();
}

async function main(): Promise<void> {
	pin(process.pid, 'server');
	const peers: { plain: Sender; batched: Sender }[] = [];
	const ws = crossws({
		hooks: {
			open(peer) {
				const websocket = peer.websocket as unknown as WebSocketLike;
				if (!(websocket as unknown as { _socket?: Socket })._socket) throw new Error('no TCP socket to cork');
				peers.push({ plain: websocket, batched: new TurnBatchedSocket(websocket) });
			},
		},
	});
	const server = http.createServer();
	server.on('upgrade', (request, socket, head) => void ws.handleUpgrade(request, socket, head));
	await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
	const { port } = server.address() as { port: number };
	const clients = fork(import.meta.filename, ['--clients', `ws://127.0.0.1:${port}`, String(SOCKETS)], {
		execArgv: process.execArgv,
	});
	pin(clients.pid ?? 0, 'generator');
	const ask = <T>(predicate: (m: { type: string; received?: number }) => boolean, send = false) =>
		new Promise<T>((resolve) => {
			const listener = (m: { type: string; received?: number }) => {
				if (!predicate(m)) return;
				clients.off('message', listener);
				resolve(m as T);
			};
			clients.on('message', listener);
			if (send) clients.send('count');
		});
	await ask((m) => m.type === 'open');
	const frame = new Uint8Array(FRAME_BYTES).fill(7);
	let sent = 0;
	const send = (sender: Sender | undefined) => {
		sender?.send(frame);
		sent++;
	};

	/** Sends turn after turn for `ms` the way `mode` does; the CPU the server spent per frame, in µs. */
	async function phase(mode: 'plain' | 'batched', ms: number): Promise<number> {
		const { received: before } = await ask<{ received: number }>((m) => m.type === 'received', true);
		const sentBefore = sent;
		const cpu = process.cpuUsage();
		const until = performance.now() + ms;
		while (performance.now() < until) {
			const picked = Array.from(
				{ length: TURN_SOCKETS },
				() => peers[Math.floor(Math.random() * peers.length)],
			);
			for (const peer of picked) send(peer?.[mode]);
			// The second frames come from another callback of the same turn, as an ack after an update would.
			queueMicrotask(() => {
				for (const peer of picked) if (Math.random() < SECOND_SHARE) send(peer?.[mode]);
			});
			await new Promise((resolve) => setImmediate(resolve));
		}
		// Everything sent has arrived before the phase's CPU is read.
		for (;;) {
			const { received } = await ask<{ received: number }>((m) => m.type === 'received', true);
			if (received - before >= sent - sentBefore) break;
			await new Promise((resolve) => setTimeout(resolve, 20));
		}
		const used = process.cpuUsage(cpu);
		return (used.user + used.system) / (sent - sentBefore);
	}

	await phase('plain', 500);
	await phase('batched', 500);
	const results = { plain: [] as number[], batched: [] as number[] };
	for (let i = 0; i < PHASES; i++) {
		for (const mode of i % 2 === 0 ? (['plain', 'batched'] as const) : (['batched', 'plain'] as const))
			results[mode].push(await phase(mode, PHASE_MS));
	}
	clients.kill();
	ws.closeAll();
	server.close();
	const [plain, batched] = [median(results.plain), median(results.batched)];
	console.log(
		`${SOCKETS} sockets, ${TURN_SOCKETS} a turn, a second frame to ${SECOND_SHARE * 100} % of them; ` +
			`${PHASES} alternating phases of ${PHASE_MS} ms each; server CPU (user + system) per frame:\n`,
	);
	console.log('| sending | µs per frame (median) | phases | × each frame on its own |');
	console.log('| --- | --- | --- | --- |');
	console.log(
		`| each frame on its own | ${fmt(plain, 2)} | ${results.plain.map((v) => fmt(v, 2)).join(', ')} | 1.00 |`,
	);
	console.log(
		`| a socket's frames of a turn in one write | ${fmt(batched, 2)} | ${results.batched.map((v) => fmt(v, 2)).join(', ')} | ${(batched / plain).toFixed(2)} |`,
	);
	writeResult('frame-writes', { SOCKETS, TURN_SOCKETS, SECOND_SHARE, PHASE_MS, results });
}

import http from 'node:http';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { acceptAlso, ensurePortFree } from '../../server/http/acceptors.ts';

const log = pino({ level: 'silent' });
const opened: (() => Promise<void>)[] = [];
afterEach(async () => {
	for (const close of opened.splice(0)) await close();
});

async function listening(server: net.Server, options: net.ListenOptions): Promise<number> {
	await new Promise<void>((resolve, reject) => {
		server.once('error', reject);
		server.listen(options, () => resolve());
	});
	opened.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
	return (server.address() as net.AddressInfo).port;
}

/**
 * How many of a burst of connections queued in the kernel `server` takes in one turn of its event loop: another
 * thread opens 64 connections while this one waits (its loop does not run), then one turn goes by.
 */
async function acceptedInOneTurn(server: http.Server, port: number): Promise<number> {
	let accepted = 0;
	server.on('connection', (socket) => {
		accepted++;
		socket.destroy();
	});
	// From a check phase, the loop's next poll phase comes before the next check phase: one turn.
	await new Promise((resolve) => setImmediate(resolve));
	const open = new Int32Array(new SharedArrayBuffer(4));
	const worker = new Worker(
		`const net = require('node:net');
		const { workerData: { port, count, open } } = require('node:worker_threads');
		let connected = 0;
		for (let i = 0; i < count; i++)
			net.connect(port, '127.0.0.1', () => {
				if (++connected === count) { Atomics.store(open, 0, 1); Atomics.notify(open, 0); }
			}).on('error', () => {}); // reset by the server, which closes what it accepts`,
		{ eval: true, workerData: { port, count: 64, open } },
	);
	opened.push(async () => void (await worker.terminate()));
	expect(Atomics.wait(open, 0, 0, 10_000)).not.toBe('timed-out');
	const before = accepted;
	return new Promise<number>((resolve) => setImmediate(() => resolve(accepted - before)));
}

describe('listening on several sockets of one port', () => {
	it('takes more than one queued connection per turn of the event loop', async () => {
		const single = http.createServer();
		const singlePort = await listening(single, { host: '127.0.0.1', port: 0, backlog: 512 });
		const wide = http.createServer();
		const widePort = await listening(wide, { host: '127.0.0.1', port: 0, backlog: 512, reusePort: true });
		opened.push(await acceptAlso(wide, { count: 7, backlog: 512, log }));
		expect(await acceptedInOneTurn(single, singlePort)).toBe(1);
		expect(await acceptedInOneTurn(wide, widePort)).toBeGreaterThanOrEqual(4);
	});

	it('serves what the extra sockets accept as connections of the server itself', async () => {
		const server = http.createServer((_req, res) => res.end('ok'));
		const port = await listening(server, { host: '127.0.0.1', port: 0, reusePort: true });
		opened.push(await acceptAlso(server, { count: 7, backlog: 512, log }));
		const answers = await Promise.all(
			Array.from({ length: 32 }, () =>
				fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } }).then((r) => r.text()),
			),
		);
		expect(answers).toEqual(Array.from({ length: 32 }, () => 'ok'));
	});

	it('refuses a port another server listens on, even one that shares its port', async () => {
		const other = net.createServer();
		const port = await listening(other, { host: '127.0.0.1', port: 0, reusePort: true });
		await expect(ensurePortFree('127.0.0.1', port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
		const free = await listening(net.createServer(), { host: '127.0.0.1', port: 0 });
		await opened.pop()?.();
		await expect(ensurePortFree('127.0.0.1', free)).resolves.toBeUndefined();
	});
});

import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import { randomUUID } from 'node:crypto';
import { Hocuspocus } from '@hocuspocus/server';
import crossws from 'crossws/adapters/node';
import { afterEach, describe, expect, it } from 'vitest';
import { keepOfRequest, type Peer } from '../../server/collab/peers.ts';
import { flatUuid } from '../../server/ids.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** A full collection once the current job is over (a WeakRef's target lives at least until then). */
async function collect(): Promise<void> {
	for (let i = 0; i < 2; i++) {
		await new Promise((resolve) => setTimeout(resolve, 0));
		gc();
	}
}

const opened: (() => void)[] = [];
afterEach(() => {
	for (const close of opened.splice(0)) close();
});

interface Opened {
	peer: Peer & { remoteAddress?: string; context: unknown };
	request: Request;
	/** Node's `IncomingMessage` of the upgrade, as crossws held it before keepOfRequest. */
	upgrade: WeakRef<object>;
}

/** A crossws server as server/collab/collab.ts runs it, and a client that connected to it at `path`. */
async function connect(path: string, slim: boolean): Promise<Opened> {
	let resolve: (opened: Opened) => void = () => {};
	const opening = new Promise<Opened>((r) => (resolve = r));
	const ws = crossws({
		idleTimeout: 0,
		hooks: {
			open(peer) {
				const p = peer as unknown as Opened['peer'];
				const nodeReq = (peer as unknown as { _internal: { nodeReq: object } })._internal.nodeReq;
				const upgrade = new WeakRef(nodeReq);
				resolve({ peer: p, request: slim ? keepOfRequest(p) : (p.request as Request), upgrade });
			},
		},
	});
	const server = http.createServer();
	server.on('upgrade', (request, socket, head) => void ws.handleUpgrade(request, socket, head));
	await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
	const { port } = server.address() as { port: number };
	const client = new WebSocket(`ws://127.0.0.1:${port}${path}`);
	opened.push(() => {
		client.close();
		ws.closeAll();
		server.close();
	});
	return opening;
}

describe('keepOfRequest', () => {
	it("keeps a socket's path and query and lets the upgrade request go", async () => {
		const { peer, request, upgrade } = await connect('/collab?protocol=6', true);
		expect(request.url).toBe('/collab?protocol=6');
		expect(new URLSearchParams(request.url.split('?')[1]).get('protocol')).toBe('6');
		// crossws's peer still answers what it reads from the request.
		expect(peer.remoteAddress).toMatch(/127\.0\.0\.1/);
		expect(peer.context).toBeTypeOf('object');
		expect(peer.request).toBe(request);
		await collect();
		expect(upgrade.deref()).toBeUndefined();
	});

	it('is what lets it go: crossws holds the request for as long as the socket is open', async () => {
		const { upgrade } = await connect('/collab?protocol=6', false);
		await collect();
		expect(upgrade.deref()).toBeDefined();
	});
});

/** Heap bytes per id held, 20,000 of them. */
async function bytesPerId(make: () => string): Promise<number> {
	await collect();
	const before = process.memoryUsage().heapUsed;
	const held = Array.from({ length: 20_000 }, make);
	await collect();
	const after = process.memoryUsage().heapUsed;
	expect(new Set(held).size).toBe(held.length);
	return (after - before) / held.length;
}

describe('flatUuid', () => {
	it('is a UUID held in about its 36 characters, not a tree of joined pieces', async () => {
		const id = flatUuid();
		expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
		const flat = await bytesPerId(flatUuid);
		const joined = await bytesPerId(() => randomUUID());
		// An id of 36 one-byte characters takes 56 bytes, and its slot in the array 8.
		expect(flat).toBeLessThan(120);
		console.log(`heap per id held: flatUuid ${flat.toFixed(0)} B, randomUUID ${joined.toFixed(0)} B`);
	});
});

describe("Hocuspocus's socket ids (patches/@hocuspocus+server+4.7.0.patch)", () => {
	it('are held in about their 36 characters', async () => {
		const hocuspocus = new Hocuspocus({ quiet: true });
		const socket = { readyState: 1, send() {}, close() {} };
		const request = { url: '/collab', headers: new Headers() } as unknown as Request;
		const perId = await bytesPerId(() => {
			const connection = hocuspocus.handleConnection(socket, request);
			connection.handleClose({ code: 1000, reason: '' });
			return (connection as unknown as { socketId: string }).socketId;
		});
		expect(perId).toBeLessThan(120);
	});
});

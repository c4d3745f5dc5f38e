import { Server, type Extension } from '@hocuspocus/server';
import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { waitFor } from '../helpers/collab.ts';
import { freePort } from '../helpers/process.ts';
import { RawClient } from '../helpers/raw-ws.ts';

/**
 * Our Hocuspocus patch (patches/@hocuspocus+server+4.7.0.patch): the configuration's own hooks, which do nothing,
 * are skipped, and an event whose hook nobody has builds no payload. Upstream ran a step of every hook chain
 * through the configuration's no-op and built the payloads of `afterHandleMessage` and `onChange` for every message,
 * each with its own copy of the request's parameters and headers, though a node of ours listens to neither.
 */
const RealSearchParams = globalThis.URLSearchParams;
let copies = 0;
class CountingSearchParams extends RealSearchParams {
	constructor(...args: ConstructorParameters<typeof URLSearchParams>) {
		super(...args);
		copies++;
	}
}

const servers: Server[] = [];
afterEach(async () => {
	globalThis.URLSearchParams = RealSearchParams;
	for (const server of servers.splice(0)) await server.destroy();
});

async function start(extensions: Extension[]) {
	const port = await freePort();
	const server = new Server({ port, address: '127.0.0.1', quiet: true, extensions });
	servers.push(server);
	await server.listen();
	return { server, url: `ws://127.0.0.1:${port}/?protocol=5` };
}

/** Sends `count` updates, each a new key in the room's map, and waits until `done` holds. */
async function sendUpdates(client: RawClient, count: number, done: () => boolean): Promise<void> {
	const doc = new Y.Doc();
	for (let i = 0; i < count; i++) {
		const sv = Y.encodeStateVector(doc);
		doc.getMap('messages').set(`m${i}`, i);
		client.sendUpdate(Y.encodeStateAsUpdate(doc, sv));
	}
	await waitFor(done, 5_000, 'the hooks to see every update');
}

describe('Hocuspocus hooks', () => {
	it('build no payload for an event nobody listens to', async () => {
		let seen = 0;
		const { url } = await start([
			{
				beforeHandleMessage: async () => {
					seen++;
				},
			},
		]);
		const client = await RawClient.open(url, 'room', 'token');
		try {
			await client.authenticated;
			globalThis.URLSearchParams = CountingSearchParams;
			copies = 0;
			await sendUpdates(client, 20, () => seen >= 20);
			// Exactly one copy per message, for the one hook that reads it (none would mean the hook lost its
			// parameters); upstream made three (with afterHandleMessage's and onChange's).
			expect(copies).toBe(20);
		} finally {
			client.close();
		}
	});

	it('still run every hook an extension has, in order', async () => {
		// Each update's chain runs its hooks in order; two updates' chains may interleave (neither is awaited).
		const calls: { hook: string; update: unknown }[] = [];
		const record =
			(hook: string) =>
			async ({ update }: { update: unknown }) =>
				void calls.push({ hook, update });
		const { url } = await start([
			{ priority: 200, onChange: record('first onChange') },
			{ onChange: record('second onChange') },
			{ afterHandleMessage: record('afterHandleMessage') },
		]);
		const client = await RawClient.open(url, 'room', 'token');
		try {
			await client.authenticated;
			const of = (hook: string) => calls.filter((c) => c.hook === hook);
			await sendUpdates(client, 3, () => of('afterHandleMessage').length >= 3);
			await waitFor(() => calls.length >= 9, 5_000, 'every onChange');
			expect(of('afterHandleMessage')).toHaveLength(3);
			const firsts = of('first onChange');
			expect(firsts).toHaveLength(3);
			expect(new Set(firsts.map((c) => c.update)).size).toBe(3);
			for (const first of firsts) {
				const second = calls.findIndex((c) => c.hook === 'second onChange' && c.update === first.update);
				expect(second).toBeGreaterThan(calls.indexOf(first));
			}
		} finally {
			client.close();
		}
	});

	it('resolve and fail as upstream, and call back with each extension’s value', async () => {
		const order: string[] = [];
		const { server } = await start([
			{ onLoadDocument: async () => 'loaded' },
			{
				onTokenSync: async () => {
					order.push('first');
					throw new Error('refused');
				},
			},
			{ onTokenSync: async () => void order.push('second') },
		]);
		const hooks = server.hocuspocus;
		const payload = {} as never;
		// The configuration's own hook runs last upstream and resolves to null, so the chain does, with or without
		// an extension's hook before it.
		expect(await hooks.hooks('onLoadDocument', payload)).toBeNull();
		expect(await hooks.hooks('onStoreDocument', payload)).toBeNull();
		// A callback hears each extension's value (upstream also heard the no-op's null, which every callback of
		// Hocuspocus ignores).
		const called: unknown[] = [];
		await hooks.hooks('onLoadDocument', payload, (value: unknown) => called.push(value));
		expect(called).toEqual(['loaded']);
		// A hook that throws ends the chain with its error.
		await expect(hooks.hooks('onTokenSync', payload)).rejects.toThrow('refused');
		expect(order).toEqual(['first']);
	});
});

import { Server } from '@hocuspocus/server';
import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { waitFor } from '../helpers/collab.ts';
import { freePort } from '../helpers/process.ts';
import { RawClient } from '../helpers/raw-ws.ts';

/**
 * Our Hocuspocus patch (patches/@hocuspocus+server+4.7.0.patch): the `requestParameters` of every hook payload
 * (several per message: beforeHandleMessage, beforeSync, afterHandleMessage, onChange) came from parsing the
 * connection's URL again each time (our web client's carries `?protocol=…`). The parse is now kept per request;
 * each payload still gets its own copy, so a hook that changes it changes nobody else's.
 */
const RealURL = globalThis.URL;
let parsed = 0;
class CountingURL extends RealURL {
	constructor(...args: ConstructorParameters<typeof URL>) {
		super(...args);
		parsed++;
	}
}

const servers: Server[] = [];
afterEach(async () => {
	globalThis.URL = RealURL;
	for (const server of servers.splice(0)) await server.destroy();
});

/** A server whose hook records each message's parameters, then changes them. */
async function start() {
	const port = await freePort();
	const seen: string[] = [];
	const server = new Server({
		port,
		address: '127.0.0.1',
		quiet: true,
		extensions: [
			{
				beforeHandleMessage: async ({ requestParameters }) => {
					seen.push(requestParameters.toString());
					requestParameters.set('changed', 'by a hook');
				},
			},
		],
	});
	servers.push(server);
	await server.listen();
	return { url: `ws://127.0.0.1:${port}`, seen };
}

/** Sends `count` updates, each a new key in the room's map, and waits until the hook saw them. */
async function sendUpdates(client: RawClient, seen: string[], count: number): Promise<void> {
	const doc = new Y.Doc();
	const before = seen.length;
	for (let i = 0; i < count; i++) {
		const sv = Y.encodeStateVector(doc);
		doc.getMap('messages').set(`m${i}`, i);
		client.sendUpdate(Y.encodeStateAsUpdate(doc, sv));
	}
	await waitFor(() => seen.length >= before + count, 5_000, 'the hook to see every update');
}

describe('Hocuspocus request parameters', () => {
	it('are parsed once per connection, not for every message, and each payload has its own', async () => {
		const { url, seen } = await start();
		const client = await RawClient.open(`${url}/?protocol=5&team=blue`, 'room', 'token');
		try {
			await client.authenticated;
			globalThis.URL = CountingURL;
			parsed = 0;
			await sendUpdates(client, seen, 20);
			// Upstream parses the URL for each hook payload: three or more per message.
			expect(parsed).toBeLessThan(20);
			// What the hook set on one payload's parameters is on none of the next.
			expect(new Set(seen)).toEqual(new Set(['protocol=5&team=blue']));
		} finally {
			client.close();
		}
	});

	it('are empty for a URL without a query', async () => {
		const { url, seen } = await start();
		const client = await RawClient.open(url, 'room', 'token');
		try {
			await client.authenticated;
			await sendUpdates(client, seen, 2);
			expect(seen).toEqual(['', '']);
		} finally {
			client.close();
		}
	});
});

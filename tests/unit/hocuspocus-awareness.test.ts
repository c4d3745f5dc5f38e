import {
	Server,
	type beforeHandleAwarenessPayload,
	type Extension,
	type onAwarenessUpdatePayload,
} from '@hocuspocus/server';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { afterEach, describe, expect, it } from 'vitest';
import { removeAwarenessStates } from 'y-protocols/awareness';
import { waitFor } from '../helpers/collab.ts';
import { freePort } from '../helpers/process.ts';
import { Msg, RawClient } from '../helpers/raw-ws.ts';

/**
 * Our Hocuspocus patch (patches/@hocuspocus+server+4.7.0.patch), option `scratchAwareness: false`: an inbound
 * awareness update reaches `beforeHandleAwareness` decoded straight into its map of states, without the scratch
 * Y.Doc and Awareness Hocuspocus 4.7 builds for every one (a random guid, a timer, and the scratch's own empty local
 * state, which 4.7 then sends on as if a client had said it). The hooks must see, change and drop states as before.
 */
const servers: Server[] = [];
afterEach(async () => {
	for (const server of servers.splice(0)) await server.destroy();
});

async function start(
	beforeHandleAwareness: (payload: beforeHandleAwarenessPayload) => void,
	{
		extensions = [],
		...options
	}: { echoAwareness?: boolean; awarenessRenewalHooks?: boolean; extensions?: Extension[] } = {},
) {
	const port = await freePort();
	const server = new Server({
		port,
		address: '127.0.0.1',
		quiet: true,
		scratchAwareness: false,
		...options,
		extensions: [{ beforeHandleAwareness: async (payload) => beforeHandleAwareness(payload) }, ...extensions],
	});
	servers.push(server);
	await server.listen();
	return { server, url: `ws://127.0.0.1:${port}` };
}

/** One awareness frame: [clientId, clock, state] each (y-protocols' encoding). */
function awareness(client: RawClient, entries: [number, number, unknown][]): void {
	client.send(
		client.frame(Msg.Awareness, (e) => {
			const body = encoding.createEncoder();
			encoding.writeVarUint(body, entries.length);
			for (const [clientId, clock, state] of entries) {
				encoding.writeVarUint(body, clientId);
				encoding.writeVarUint(body, clock);
				encoding.writeVarString(body, JSON.stringify(state));
			}
			encoding.writeVarUint8Array(e, encoding.toUint8Array(body));
		}),
	);
}

/** The client ids of each awareness frame `client` receives, with whether each state is null (removed). */
function awarenessReceived(client: RawClient): [number, boolean][][] {
	const frames: [number, boolean][][] = [];
	client.ws.addEventListener('message', (event) => {
		const decoder = decoding.createDecoder(new Uint8Array(event.data as ArrayBuffer));
		decoding.readVarString(decoder);
		if (decoding.readVarUint(decoder) !== Msg.Awareness) return;
		const update = decoding.createDecoder(decoding.readVarUint8Array(decoder));
		const entries: [number, boolean][] = [];
		for (let i = decoding.readVarUint(update); i > 0; i--) {
			const clientId = decoding.readVarUint(update);
			decoding.readVarUint(update);
			entries.push([clientId, JSON.parse(decoding.readVarString(update)) === null]);
		}
		frames.push(entries);
	});
	return frames;
}

describe('Hocuspocus with scratchAwareness: false', () => {
	it('hands the hooks exactly the states the client sent, and holds only those', async () => {
		const seen: Map<number, unknown>[] = [];
		const { server, url } = await start(({ states }) => void seen.push(new Map(states)));
		const client = await RawClient.open(url, 'room', 'token');
		try {
			await client.authenticated;
			awareness(client, [[101, 1, { user: { name: 'Ana' } }]]);
			await waitFor(() => seen.length === 1, 5_000, 'the hook to run');
			// Hocuspocus 4.7's scratch Awareness adds its own client id with state {} here.
			expect([...(seen[0] as Map<number, unknown>)]).toEqual([[101, { user: { name: 'Ana' } }]]);
			const held = server.hocuspocus.documents.get('room')?.awareness;
			await waitFor(() => held?.getStates().has(101) === true, 5_000, 'the state to be applied');
			expect([...(held?.getStates().keys() ?? [])]).toEqual([101]);
			expect(held?.meta.get(101)?.clock).toBe(1);
		} finally {
			client.close();
		}
	});

	it('applies what the hooks changed and dropped, with the clocks the client sent', async () => {
		const seen: Map<number, unknown>[] = [];
		const { server, url } = await start(({ states }) => {
			seen.push(new Map(states));
			states.delete(102);
			states.set(101, { rewritten: true });
		});
		const client = await RawClient.open(url, 'room', 'token');
		try {
			await client.authenticated;
			// A null state (leaving) and a clock of 0 are not states a fresh Awareness holds; of two entries for
			// one client id, the later clock wins.
			awareness(client, [
				[101, 3, { first: true }],
				[101, 4, { second: true }],
				[102, 1, { dropped: true }],
				[103, 1, null],
				[104, 0, { stale: true }],
			]);
			await waitFor(() => seen.length === 1, 5_000, 'the hook to run');
			expect([...(seen[0] as Map<number, unknown>)]).toEqual([
				[101, { second: true }],
				[102, { dropped: true }],
			]);
			const held = server.hocuspocus.documents.get('room')?.awareness;
			await waitFor(() => held?.getStates().has(101) === true, 5_000, 'the state to be applied');
			expect([...(held?.getStates() ?? [])]).toEqual([[101, { rewritten: true }]]);
			expect(held?.meta.get(101)?.clock).toBe(4);
		} finally {
			client.close();
		}
	});
});

describe('Hocuspocus with echoAwareness: false', () => {
	async function twoMembers(echoAwareness: boolean) {
		const { server, url } = await start(() => {}, { echoAwareness });
		const [ana, ben] = [
			await RawClient.open(url, 'room', 'token'),
			await RawClient.open(url, 'room', 'token'),
		];
		await Promise.all([ana.authenticated, ben.authenticated]);
		return { server, ana, ben, anaGot: awarenessReceived(ana), benGot: awarenessReceived(ben) };
	}

	it("sends a connection's presence change to the others only; a removal to everyone", async () => {
		const { server, ana, ben, anaGot, benGot } = await twoMembers(false);
		try {
			// Alone in the room (no state but his own), Ben hears his own change: it is all a lone provider hears.
			awareness(ben, [[202, 1, { typing: false }]]);
			await waitFor(() => benGot.length === 1 && anaGot.length === 1, 5_000, 'both to hear of Ben');
			// No longer alone, neither hears their own change back.
			awareness(ana, [[101, 1, { typing: true }]]);
			await waitFor(() => benGot.length === 2, 5_000, 'Ben to hear of Ana');
			awareness(ben, [[202, 2, { typing: true }]]);
			await waitFor(() => anaGot.length === 2, 5_000, 'Ana to hear of Ben');
			// Ana's state is removed (as Presence does when she says she leaves): her connection hears it too.
			const document = server.hocuspocus.documents.get('room');
			const [connection] = [...(document?.connections ?? [])].find(([, e]) => e.clients.has(101)) ?? [];
			if (!document || !connection) throw new Error("Ana's connection is not in the room");
			removeAwarenessStates(document.awareness, [101], { source: 'connection', connection });
			await waitFor(() => benGot.length === 3 && anaGot.length === 3, 5_000, 'both to hear Ana left');
			expect(anaGot).toEqual([[[202, false]], [[202, false]], [[101, true]]]);
			expect(benGot).toEqual([[[202, false]], [[101, false]], [[101, true]]]);
		} finally {
			ana.close();
			ben.close();
		}
	});

	it('sends every change back to its connection by default, as upstream', async () => {
		const { ana, ben, anaGot, benGot } = await twoMembers(true);
		try {
			awareness(ana, [[101, 1, { typing: true }]]);
			await waitFor(() => benGot.length === 1 && anaGot.length === 1, 5_000, 'both to hear of Ana');
			expect(anaGot).toEqual([[[101, false]]]);
		} finally {
			ana.close();
			ben.close();
		}
	});
});

describe('Hocuspocus onAwarenessUpdate', () => {
	/** A server with `extensions`, counting the hooks it runs by name. */
	async function counting(extensions: Extension[]) {
		const { server, url } = await start(() => {}, { extensions });
		const ran: string[] = [];
		const hooks = server.hocuspocus.hooks.bind(server.hocuspocus);
		server.hocuspocus.hooks = ((name: string, ...rest: unknown[]) => {
			ran.push(name);
			return (hooks as (...args: unknown[]) => Promise<unknown>)(name, ...rest);
		}) as typeof server.hocuspocus.hooks;
		const client = await RawClient.open(url, 'room', 'token');
		await client.authenticated;
		return { server, client, ran };
	}

	it('runs no hooks for an awareness update when no extension listens', async () => {
		const { server, client, ran } = await counting([]);
		try {
			awareness(client, [[101, 1, { typing: true }]]);
			const held = () => server.hocuspocus.documents.get('room')?.awareness.getStates().has(101) === true;
			await waitFor(held, 5_000, 'the state to be applied');
			expect(ran).toContain('beforeHandleAwareness');
			expect(ran).not.toContain('onAwarenessUpdate');
		} finally {
			client.close();
		}
	});

	it('gives a listener the changed clients and every state of the document', async () => {
		const seen: onAwarenessUpdatePayload[] = [];
		const { client } = await counting([{ onAwarenessUpdate: async (payload) => void seen.push(payload) }]);
		try {
			awareness(client, [[101, 1, { typing: true }]]);
			await waitFor(() => seen.length === 1, 5_000, 'the hook to run');
			expect(seen[0]?.added).toEqual([101]);
			expect(seen[0]?.states).toEqual([{ clientId: 101, typing: true }]);
		} finally {
			client.close();
		}
	});
});

describe('Hocuspocus with awarenessRenewalHooks: false', () => {
	/** Ana and Ben in one room; the hook rewrites every state (as Presence does) and counts its runs. */
	async function room(awarenessRenewalHooks: boolean, judge?: (states: Map<number, unknown>) => void) {
		const judged: Map<number, unknown>[] = [];
		const { server, url } = await start(
			({ states }) => {
				judged.push(new Map(states));
				for (const [id, state] of states) states.set(id, { judged: state });
				judge?.(states);
			},
			{ awarenessRenewalHooks },
		);
		const [ana, ben] = [
			await RawClient.open(url, 'room', 'token'),
			await RawClient.open(url, 'room', 'token'),
		];
		await Promise.all([ana.authenticated, ben.authenticated]);
		const held = () => server.hocuspocus.documents.get('room')?.awareness;
		return { ana, ben, benGot: awarenessReceived(ben), judged, held };
	}

	it('renews the state the hooks made of the same JSON without running them again', async () => {
		const { ana, ben, benGot, judged, held } = await room(false);
		try {
			awareness(ana, [[101, 1, { typing: false }]]);
			await waitFor(() => benGot.length === 1, 5_000, 'Ben to hear of Ana');
			const state = held()?.getStates().get(101);
			expect(state).toEqual({ judged: { typing: false } });
			awareness(ana, [[101, 2, { typing: false }]]);
			await waitFor(() => benGot.length === 2, 5_000, 'Ben to hear the renewal');
			expect(judged).toHaveLength(1);
			expect(held()?.meta.get(101)?.clock).toBe(2);
			expect(held()?.getStates().get(101)).toBe(state);
			// A change, and a renewal of it, go through the hooks once.
			awareness(ana, [[101, 3, { typing: true }]]);
			await waitFor(() => benGot.length === 3, 5_000, 'Ben to hear the change');
			awareness(ana, [[101, 4, { typing: true }]]);
			await waitFor(() => benGot.length === 4, 5_000, 'Ben to hear its renewal');
			expect(judged.map((states) => states.get(101))).toEqual([{ typing: false }, { typing: true }]);
			expect(held()?.getStates().get(101)).toEqual({ judged: { typing: true } });
			expect(held()?.meta.get(101)?.clock).toBe(4);
		} finally {
			ana.close();
			ben.close();
		}
	});

	it('runs the hooks for a renewal of a state they dropped, an old clock, or another client id', async () => {
		const { ana, ben, judged, held } = await room(false, (states) => {
			if ((states.get(102) as { judged?: { drop?: boolean } } | undefined)?.judged?.drop) states.delete(102);
		});
		try {
			awareness(ana, [[102, 1, { drop: true }]]);
			awareness(ana, [[102, 2, { drop: true }]]);
			await waitFor(() => judged.length === 2, 5_000, 'the hooks to judge both');
			expect(held()?.getStates().has(102)).toBe(false);
			awareness(ana, [[101, 1, { typing: false }]]);
			awareness(ana, [[101, 1, { typing: false }]]);
			awareness(ana, [[103, 2, { typing: false }]]);
			await waitFor(() => judged.length === 5, 5_000, 'the hooks to judge the rest');
			expect(held()?.meta.get(101)?.clock).toBe(1);
		} finally {
			ana.close();
			ben.close();
		}
	});

	it('runs the hooks for every renewal by default, as upstream', async () => {
		const { ana, ben, benGot, judged } = await room(true);
		try {
			awareness(ana, [[101, 1, { typing: false }]]);
			await waitFor(() => benGot.length === 1, 5_000, 'Ben to hear of Ana');
			awareness(ana, [[101, 2, { typing: false }]]);
			await waitFor(() => benGot.length === 2, 5_000, 'Ben to hear the renewal');
			expect(judged).toHaveLength(2);
		} finally {
			ana.close();
			ben.close();
		}
	});
});

import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { MessageEvent, RoomEvent } from '../../src/lib/protocol/events.ts';
import { limits } from '../../src/lib/protocol/limits.ts';
import { RoomSync } from '../../src/lib/sync/room-sync.ts';
import { MemoryDocumentStore, MemoryMeta, MemoryServer } from '../helpers/memory-sync.ts';

/*
 * The room sync core (src/lib/sync/) in Node, against an in-memory server that keeps the protocol's rules: acks,
 * `pending`, refusals and the rebuild, history. The same core runs in the app (behind RoomStore) and in the
 * integration tests' clients, against the real server.
 */

const roomId = randomUUID();
const ana = randomUUID();
const ben = randomUUID();
const open: RoomSync[] = [];

afterEach(async () => {
	while (open.length) await open.pop()?.close();
});

interface Device {
	store: MemoryDocumentStore;
	meta: MemoryMeta;
}
const newDevice = (): Device => ({ store: new MemoryDocumentStore(), meta: new MemoryMeta() });

function client(
	server: MemoryServer,
	userId: string,
	device = newDevice(),
	removedNotice?: string,
): RoomSync {
	const sync = new RoomSync({
		roomId,
		userId,
		transport: server.transport(userId),
		store: device.store,
		meta: device.meta,
		history: server.history,
		removedNotice,
	});
	open.push(sync);
	return sync;
}

let clock = Date.parse('2026-11-30T09:00:00Z');
function message(senderId: string, content: string): MessageEvent {
	return {
		kind: 'message',
		clientMsgId: randomUUID(),
		senderId,
		content,
		createdAt: new Date((clock += 1_000)).toISOString(),
	};
}

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!check()) {
		if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
		await new Promise((resolve) => setTimeout(resolve, 5));
	}
}

const statusOf = (sync: RoomSync, id: string) => sync.messages.find((m) => m.clientMsgId === id)?.status;
const contents = (sync: RoomSync) => sync.messages.map((m) => m.content);
const ready = (sync: RoomSync) => until(() => sync.synced && sync.metaReady, 'the room to sync');

describe('acknowledgements', () => {
	it('shows a message pending until the server acknowledges it, and keeps the ack on the device', async () => {
		const server = new MemoryServer({ [ana]: 'write' });
		const device = newDevice();
		const a = client(server, ana, device);
		await ready(a);
		const m = message(ana, 'hello');
		a.write(m);
		expect(statusOf(a, m.clientMsgId)).toBe('pending');
		expect(a.pendingCount).toBe(1);
		await until(() => statusOf(a, m.clientMsgId) === 'synced', 'the ack');
		expect(a.pendingCount).toBe(0);
		expect(await device.meta.ackedIds(roomId)).toEqual([m.clientMsgId]);
		expect(server.messages().map((e) => e.clientMsgId)).toEqual([m.clientMsgId]);
	});

	it('gets an ack the connection lost by asking `pending` after reconnecting, and the message stays single', async () => {
		const server = new MemoryServer({ [ana]: 'write' });
		const a = client(server, ana);
		await ready(a);
		server.dropAcks = true;
		const m = message(ana, 'stored, ack lost');
		a.write(m);
		await until(() => server.messages().length === 1, 'the server to store it');
		await new Promise((resolve) => setTimeout(resolve, 50));
		expect(statusOf(a, m.clientMsgId)).toBe('pending');

		server.dropAcks = false;
		server.setOnline(false);
		await until(() => !a.synced, 'the link to drop');
		server.setOnline(true);
		await until(() => statusOf(a, m.clientMsgId) === 'synced', 'the answer to `pending`');
		expect(server.messages()).toHaveLength(1);
	});

	it('asks again while a message stays unacknowledged, without a reconnect', async () => {
		const server = new MemoryServer({ [ana]: 'write' });
		const a = client(server, ana);
		await ready(a);
		server.dropAcks = true;
		const m = message(ana, 'ack lost, link up');
		a.write(m);
		await until(() => server.messages().length === 1, 'the server to store it');
		server.dropAcks = false;
		// The first question goes about 1 s after the login (30 % jitter).
		await until(() => statusOf(a, m.clientMsgId) === 'synced', 'a question without a reconnect', 4_000);
	});

	it('sends what was written offline exactly once when the network returns, in order, to everyone', async () => {
		const server = new MemoryServer({ [ana]: 'write', [ben]: 'write' });
		const a = client(server, ana);
		const b = client(server, ben);
		await Promise.all([ready(a), ready(b)]);
		server.setOnline(false);
		await until(() => !a.synced, 'offline');
		const sent = ['one', 'two', 'three'].map((text) => message(ana, text));
		for (const m of sent) a.write(m);
		expect(a.pendingCount).toBe(3);
		expect(a.messages.map((m) => m.status)).toEqual(['pending', 'pending', 'pending']);

		server.setOnline(true);
		await until(() => a.pendingCount === 0, 'every ack');
		await until(() => b.messages.length === 3, 'Ben to get them');
		expect(contents(b)).toEqual(['one', 'two', 'three']);
		expect(server.messages().map((e) => e.content)).toEqual(['one', 'two', 'three']);
	});

	it('shows the same states after a restart, offline, from the device', async () => {
		const server = new MemoryServer({ [ana]: 'write' });
		const device = newDevice();
		const a = client(server, ana, device);
		await ready(a);
		const acked = message(ana, 'acked');
		a.write(acked);
		await until(() => a.pendingCount === 0, 'the ack');
		server.setOnline(false);
		await until(() => !a.synced, 'offline');
		const unsent = message(ana, 'unsent');
		a.write(unsent);
		await a.close();

		const again = client(server, ana, device);
		await until(() => again.localReady && again.metaReady, 'the device copy');
		expect(again.messages.map((m) => [m.content, m.status])).toEqual([
			['acked', 'synced'],
			['unsent', 'pending'],
		]);
		expect(again.pendingCount).toBe(1);
		server.setOnline(true);
		await until(() => again.pendingCount === 0, 'the unsent one to go');
		expect(server.messages().map((e) => e.content)).toEqual(['acked', 'unsent']);
	});
});

describe('refusals and the rebuild', () => {
	/** Ana, synced, with one acknowledged message; then offline, she writes `valid` and her copy gets `forged`. */
	async function anaWithARefusedUpdate(server: MemoryServer, device = newDevice()) {
		const a = client(server, ana, device);
		await ready(a);
		const first = message(ana, 'first');
		a.write(first);
		await until(() => a.pendingCount === 0, 'the first ack');
		server.setOnline(false);
		await until(() => !a.synced, 'offline');
		const valid = message(ana, 'valid, written offline');
		a.write(valid);
		// Another sender's message in Ana's copy (a bug, a damaged device): the server refuses the update.
		const forged = message(ben, 'forged');
		a.doc.transact(() => a.doc.getMap('messages').set(forged.clientMsgId, forged));
		return { a, first, valid, forged, clientId: a.doc.clientID };
	}

	it('rebuilds from the server and writes the own valid messages again; the refused update leaves the device', async () => {
		const server = new MemoryServer({ [ana]: 'write', [ben]: 'write' });
		const device = newDevice();
		const { a, first, valid, forged, clientId } = await anaWithARefusedUpdate(server, device);
		server.setOnline(true);
		await until(() => server.refused.length === 1, 'the refusal');
		await until(() => statusOf(a, valid.clientMsgId) === 'synced', 'the valid message, written again');

		expect(server.refused[0]).toContain(`senderId of ${forged.clientMsgId}`);
		expect(a.doc.clientID).not.toBe(clientId);
		expect(server.messages().map((e) => e.content)).toEqual(['first', 'valid, written offline']);
		expect(a.messages.map((m) => m.clientMsgId)).toEqual([first.clientMsgId, valid.clientMsgId]);
		expect(a.notice?.kind).toBe('warning');
		// The device holds the fresh copy only: a restart does not send the refused update again.
		expect(device.store.read(roomId).getMap('messages').has(forged.clientMsgId)).toBe(false);
		expect(server.refused).toHaveLength(1);
	});

	it('keeps a message written during the rebuild, and sends it once', async () => {
		const server = new MemoryServer({ [ana]: 'write' });
		const { a } = await anaWithARefusedUpdate(server);
		const during = message(ana, 'during the rebuild');
		let written = false;
		a.subscribe({
			change: () => {
				if (a.rebuilding && !written) {
					written = true;
					a.write(during);
				}
			},
		});
		server.setOnline(true);
		await until(() => written, 'the rebuild to start');
		expect(statusOf(a, during.clientMsgId)).toBe('pending');
		await until(() => statusOf(a, during.clientMsgId) === 'synced', 'the message written during the rebuild');
		expect(server.messages().map((e) => e.content)).toEqual([
			'first',
			'valid, written offline',
			'during the rebuild',
		]);
	});

	it('stops rebuilding when the server keeps refusing, and marks the unsent messages failed', async () => {
		const server = new MemoryServer({ [ana]: 'write' });
		const { a, valid } = await anaWithARefusedUpdate(server);
		server.refuseFrom = ana;
		server.setOnline(true);
		await until(() => a.notice?.kind === 'error', 'the notice that it gives up', 10_000);
		const refusals = server.refused.length;
		expect(refusals).toBeLessThanOrEqual(3);
		expect(statusOf(a, valid.clientMsgId)).toBe('failed');
		expect(a.messages.find((m) => m.clientMsgId === valid.clientMsgId)?.reason).toBe(
			'refused repeatedly by the server',
		);
		await new Promise((resolve) => setTimeout(resolve, 700));
		expect(server.refused.length).toBe(refusals);
		expect(a.pendingCount).toBe(0);
	});

	it('a removed member is told so: readable, not synced, nothing can be written', async () => {
		const server = new MemoryServer({ [ana]: 'write', [ben]: 'write' });
		const a = client(server, ana);
		await ready(a);
		a.write(message(ana, 'before'));
		await until(() => a.pendingCount === 0, 'the ack');
		server.remove(ana);
		await until(() => a.phase === 'removed', 'the removal');
		expect(a.notice).toEqual({ kind: 'error', text: 'You are no longer a member of this room' });
		expect(a.link).toBeUndefined();
		expect(contents(a)).toEqual(['before']);
		expect(() => a.write(message(ana, 'after'))).toThrow('This room is not available.');
	});

	it('a read-only member cannot write', async () => {
		const server = new MemoryServer({ [ana]: 'read' });
		const a = client(server, ana);
		await ready(a);
		expect(a.readOnly).toBe(true);
		expect(() => a.write(message(ana, 'no'))).toThrow('You can only read this room.');
	});
});

describe('history', () => {
	function serverWith(count: number): { server: MemoryServer; sent: RoomEvent[] } {
		const server = new MemoryServer({ [ana]: 'write', [ben]: 'write' });
		const sent = Array.from({ length: count }, (_, i) => message(ben, `m ${String(i).padStart(3, '0')}`));
		server.doc.transact(() => {
			for (const m of sent) server.map.set(m.clientMsgId, m);
		});
		return { server, sent };
	}

	it('keeps what the server trims as history, still shown, on the device', async () => {
		const { server, sent } = serverWith(120);
		const device = newDevice();
		const a = client(server, ana, device);
		await ready(a);
		await until(() => a.messages.length === 120, 'the whole room');
		server.trim(20);
		await until(() => a.doc.getMap('messages').size === 20, 'the trim to arrive');
		expect(a.messages.map((m) => m.clientMsgId)).toEqual(sent.map((m) => m.clientMsgId));
		expect((await device.meta.history(roomId)).length).toBe(100);
	});

	it('knows a synced room smaller than the server window holds everything: nothing earlier to show', async () => {
		const { server } = serverWith(40);
		const a = client(server, ana);
		await ready(a);
		await until(() => a.messages.length === 40 && a.synced, 'the room');
		// A full window may have been trimmed; a smaller one was not, and that stays known.
		expect(a.mayHaveOlder(40)).toBe(true);
		expect(a.mayHaveOlder(100)).toBe(false);
		expect(a.mayHaveOlder(40)).toBe(false);
		await a.close();
		expect(a.mayHaveOlder(100)).toBe(false);
	});

	it('pages older messages in from the server, once each and in order, until there are none', async () => {
		const count = limits.historyPageSize * 2 + 30;
		const { server, sent } = serverWith(count);
		server.trim(30);
		const a = client(server, ana);
		await ready(a);
		await until(() => a.messages.length === 30, 'the live window');
		expect(a.mayHaveOlder(0)).toBe(true);
		// A document of a full window may have been trimmed: older messages may be on the server.
		expect(a.mayHaveOlder(30)).toBe(true);
		const added: number[] = [];
		while (a.mayHaveOlder(0)) added.push(await a.loadOlder());
		expect(added).toEqual([limits.historyPageSize, limits.historyPageSize]);
		expect(await a.loadOlder()).toBe(0);
		expect(a.loadingOlder).toBe(false);
		expect(a.messages.map((m) => m.clientMsgId)).toEqual(sent.map((m) => m.clientMsgId));
	});
});

import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { squashTrimmed, trimPlan } from '../../server/collab/trim.ts';

const senders = [randomUUID(), randomUUID(), randomUUID()];

/** A room written by three devices, one message per transaction, with reactions on some. */
function room(messages: number) {
	const devices = senders.map(() => new Y.Doc());
	const base = Date.parse('2026-01-01T00:00:00Z');
	const ids: string[] = [];
	for (let i = 0; i < messages; i++) {
		const d = i % 3;
		const device = devices[d] as Y.Doc;
		const clientMsgId = randomUUID();
		ids.push(clientMsgId);
		const createdAt = new Date(base + i * 1_000).toISOString();
		device.transact(() =>
			device.getMap('messages').set(clientMsgId, {
				kind: 'message',
				clientMsgId,
				senderId: senders[d],
				content: `message ${i}`,
				createdAt,
			}),
		);
		if (i % 10 === 0) {
			const reaction = randomUUID();
			device.transact(() =>
				device.getMap('messages').set(reaction, {
					kind: 'reaction',
					clientMsgId: reaction,
					senderId: senders[d],
					targetId: clientMsgId,
					emoji: '👍',
					createdAt,
				}),
			);
		}
	}
	const server = new Y.Doc();
	for (const device of devices) Y.applyUpdate(server, Y.encodeStateAsUpdate(device));
	return { server, ids, devices };
}

describe('trimming a room to its window', () => {
	it('plans the oldest messages and what points at them, and keeps the newest', () => {
		const { server, ids } = room(300);
		const plan = new Set(trimPlan(server.getMap('messages'), 100));
		for (const id of ids.slice(0, 200)) expect(plan.has(id)).toBe(true);
		for (const id of ids.slice(200)) expect(plan.has(id)).toBe(false);
		expect(plan.size).toBe(200 + 20); // the reactions on the 200 trimmed messages go too
		expect(trimPlan(server.getMap('messages'), 300)).toEqual([]);
	});

	it('keeps what points at a kept message even when it is older than the oldest message kept', () => {
		const { server, ids } = room(300);
		const map = server.getMap('messages');
		// A reaction to the newest message, stamped by a clock far behind.
		const early = randomUUID();
		server.transact(() =>
			map.set(early, {
				kind: 'reaction',
				clientMsgId: early,
				senderId: senders[0],
				targetId: ids.at(-1),
				emoji: '🎉',
				createdAt: '2025-01-01T00:00:00.000Z',
			}),
		);
		expect(trimPlan(map, 100)).not.toContain(early);
	});

	it('squashes trimmed entries into GC runs: a small snapshot that every replica agrees with', () => {
		const { server, ids, devices } = room(3_000);
		const map = server.getMap('messages');
		const plan = trimPlan(map, 100);
		server.transact(() => plan.forEach((key) => map.delete(key)));
		const tombstoned = Y.encodeStateAsUpdate(server);
		expect(squashTrimmed(server, 'messages')).toBe(plan.length);
		const snapshot = Y.encodeStateAsUpdate(server);
		console.log(
			`trim: ${plan.length} entries trimmed, snapshot ${tombstoned.length} B with tombstones, ${snapshot.length} B squashed`,
		);
		expect(snapshot.length).toBeLessThan(tombstoned.length / 5);

		const loaded = new Y.Doc();
		Y.applyUpdate(loaded, snapshot);
		const kept = [...loaded.getMap('messages').keys()];
		expect(new Set(kept)).toEqual(new Set([...map.keys()]));
		expect(kept).toContain(ids.at(-1));
		expect(Y.encodeStateVector(loaded)).toEqual(Y.encodeStateVector(server));

		// A device that still holds everything (offline during the trim) converges on the server's copy, and has
		// nothing to send back.
		const device = devices[0] as Y.Doc;
		Y.applyUpdate(device, Y.encodeStateAsUpdate(loaded, Y.encodeStateVector(device)));
		expect(new Set(device.getMap('messages').keys())).toEqual(new Set(kept));
		const back = Y.encodeStateAsUpdate(device, Y.encodeStateVector(loaded));
		const probe = new Y.Doc();
		Y.applyUpdate(probe, snapshot);
		Y.applyUpdate(probe, back);
		expect(new Set(probe.getMap('messages').keys())).toEqual(new Set(kept));

		// New writes after the snapshot still integrate.
		const next = randomUUID();
		device.transact(() =>
			device.getMap('messages').set(next, {
				kind: 'message',
				clientMsgId: next,
				senderId: senders[0],
				content: 'after the trim',
				createdAt: new Date().toISOString(),
			}),
		);
		Y.applyUpdate(loaded, Y.encodeStateAsUpdate(device, Y.encodeStateVector(loaded)));
		expect(loaded.getMap('messages').has(next)).toBe(true);
	});

	it('squashes a live room after each trim: it keeps taking writes and converges with devices that missed the trim', () => {
		const { server, devices } = room(1_000);
		const map = server.getMap('messages');
		const relayed: Uint8Array[] = [];
		server.on('update', (u: Uint8Array) => relayed.push(u));
		const write = (device: Y.Doc, content: string) => {
			const id = randomUUID();
			device.transact(() =>
				device.getMap('messages').set(id, {
					kind: 'message',
					clientMsgId: id,
					senderId: senders[0],
					content,
					createdAt: new Date().toISOString(),
				}),
			);
			Y.applyUpdate(server, Y.encodeStateAsUpdate(device, Y.encodeStateVector(server)));
			return id;
		};
		const online = devices[0] as Y.Doc;
		const offline = devices[1] as Y.Doc;
		for (let round = 0; round < 3; round++) {
			for (let i = 0; i < 200; i++) write(online, `round ${round} #${i}`);
			const plan = trimPlan(map, 100);
			server.transact(() => plan.forEach((key) => map.delete(key)));
			expect(squashTrimmed(server, 'messages')).toBe(plan.length);
			for (const u of relayed.splice(0)) Y.applyUpdate(online, u);
		}
		// Every trimmed entry is gone from the live document's map, not only hidden.
		expect(server.getMap('messages')._map.size).toBe(map.size);

		// A device offline through all of it sends what it holds and gets the server's state: both agree.
		Y.applyUpdate(server, Y.encodeStateAsUpdate(offline, Y.encodeStateVector(server)));
		Y.applyUpdate(offline, Y.encodeStateAsUpdate(server, Y.encodeStateVector(offline)));
		const keys = new Set(map.keys());
		expect(new Set(offline.getMap('messages').keys())).toEqual(keys);
		expect(new Set(online.getMap('messages').keys())).toEqual(keys);
		expect(Y.encodeStateVector(offline)).toEqual(Y.encodeStateVector(server));

		// And a new message from it still lands.
		const last = write(offline, 'after three trims');
		expect(map.has(last)).toBe(true);
	});
});

import { randomUUID } from 'node:crypto';
import * as Y from 'yjs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { compareEvents, type MessageEvent } from '../../src/lib/protocol/events.ts';
import { describeEachBackend } from '../helpers/backends.ts';
import { connect, waitFor, type TestClient } from '../helpers/collab.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const WINDOW = 100;

describeEachBackend('a room longer than its window', (backend) => {
	let server: TestServer;
	const clients: TestClient[] = [];
	const open = (roomId: string, user: { accessToken: string; user: { id: string } }, doc?: Y.Doc) => {
		const c = connect(server.wsUrl, roomId, user.accessToken, user.user.id, { doc });
		clients.push(c);
		return c;
	};

	beforeAll(async () => {
		server = await startTestServer(backend, {
			ROOM_WINDOW_MESSAGES: String(WINDOW),
			WRITE_UPDATES_PER_10S: '100000',
			WRITE_MESSAGES_PER_10S: '100000',
		});
	});
	afterAll(async () => {
		for (const c of clients) c.destroy();
		await server?.close();
	});

	it('keeps the newest messages in the document, the rest as history, and accepts what points at trimmed ones', async () => {
		const ana = await server.api.register('ana');
		const ben = await server.api.register('ben');
		const room = await server.api.createGroup(ana.accessToken, [ben.user.id]);
		const a = open(room.id, ana);
		const sent: MessageEvent[] = [];
		for (let i = 0; i < 200; i++) sent.push(a.send(`message ${i}`));
		// Display order (what the window keeps the newest of), whatever order they were written in.
		sent.sort(compareEvents);
		// Ben was offline all along, with a copy of the room as it was and one message of his own.
		const offline = new Y.Doc();
		Y.applyUpdate(offline, Y.encodeStateAsUpdate(a.doc));
		await a.synced(30_000);

		// The next store trims the live document to the window (debounced: within about 10 s).
		await waitFor(
			async () => {
				const probe = open(room.id, ana);
				await probe.synced();
				const n = probe.messages().length;
				probe.destroy();
				return n === WINDOW;
			},
			30_000,
			'the document to keep only the window',
		);
		const fresh = open(room.id, ben);
		await fresh.synced();
		expect(
			fresh
				.messages()
				.map((m) => m.content)
				.sort(),
		).toEqual(
			sent
				.slice(100)
				.map((m) => m.content)
				.sort(),
		);

		// History keeps everything, in pages.
		const page1 = await server.api.get(`/api/rooms/${room.id}/messages?limit=150`, ben.accessToken);
		const page2 = await server.api.get(
			`/api/rooms/${room.id}/messages?limit=150&before=${page1.body.nextBefore}`,
			ben.accessToken,
		);
		const ids = [...page2.body.items, ...page1.body.items].map((r: { clientMsgId: string }) => r.clientMsgId);
		expect(new Set(ids).size).toBe(ids.length);
		for (const m of sent) expect(ids).toContain(m.clientMsgId);

		// A reaction to a trimmed message (found in history) is accepted; one to nothing at all is not.
		fresh.write({ kind: 'reaction', targetId: sent[3]!.clientMsgId, emoji: '👍' });
		await fresh.synced();

		// A new entry may not take the id of someone else's trimmed message (written from a document that never
		// saw the room, so it is a new key, not an overwrite).
		const stolen = sent[0]!.clientMsgId;
		const forged = new Y.Doc();
		forged.getMap('messages').set(stolen, {
			kind: 'message',
			clientMsgId: stolen,
			senderId: ben.user.id,
			content: 'not the original',
			createdAt: new Date().toISOString(),
		});
		const hostile = connect(server.wsUrl, room.id, ben.accessToken, ben.user.id, { doc: forged });
		clients.push(hostile);
		const refused = await new Promise<string>((resolve) =>
			hostile.provider.on('close', ({ event }: { event: { reason: string } }) => resolve(event.reason)),
		);
		expect(refused).toMatch(/already exists in the room history/);
		hostile.destroy();

		// Ben's offline copy: its sync gets the trim (its document drops the old ones), and his message is kept.
		const own = {
			kind: 'message' as const,
			clientMsgId: randomUUID(),
			senderId: ben.user.id,
			content: 'written offline against the old window',
			createdAt: new Date().toISOString(),
		};
		offline.getMap('messages').set(own.clientMsgId, own);
		const back = open(room.id, ben, offline);
		await back.synced();
		await waitFor(() => back.messages().length === WINDOW + 1, 10_000, 'the offline copy to be trimmed');
		await waitFor(
			() => fresh.messages().some((m) => m.clientMsgId === own.clientMsgId),
			10_000,
			'his message',
		);

		// After a restart the room loads trimmed.
		await server.restart();
		const again = open(room.id, ana);
		await again.synced();
		await waitFor(() => again.messages().length >= WINDOW, 10_000, 'the room after a restart');
		expect(again.messages().length).toBeLessThanOrEqual(Math.floor(WINDOW * 1.5));
		expect(again.messages().some((m) => m.clientMsgId === sent[0]!.clientMsgId)).toBe(false);
	}, 90_000);
});

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SignJWT } from 'jose';
import * as decoding from 'lib0/decoding';
import * as Y from 'yjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compareEvents } from '../../src/lib/protocol/events.ts';
import { OLDEST_CLIENT_PROTOCOL, PROTOCOL_VERSION } from '../../src/lib/protocol/version.ts';
import { describeEachBackend } from '../helpers/backends.ts';
import { jsonlFields } from '../helpers/export-fixtures.ts';
import { connect, waitFor, type TestClient } from '../helpers/collab.ts';
import { Msg, RawClient } from '../helpers/raw-ws.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const contentsOf = (client: TestClient) =>
	client
		.messages()
		.map((m) => m.content)
		.sort();

describeEachBackend('collaboration', (backend) => {
	let server: TestServer;
	const clients: TestClient[] = [];
	const open = (roomId: string, token: string | null, userId = '') => {
		const client = connect(server.wsUrl, roomId, token, userId);
		clients.push(client);
		return client;
	};

	beforeAll(async () => {
		server = await startTestServer(backend);
	});
	afterEach(() => {
		for (const c of clients.splice(0)) c.destroy();
	});
	afterAll(async () => {
		await server?.close();
	});

	async function roomWithTwoMembers() {
		const ana = await server.api.register('ana');
		const ben = await server.api.register('ben');
		const room = await server.api.createGroup(ana.accessToken, [ben.user.id]);
		return { ana, ben, room };
	}

	const mirrored = async (roomId: string) =>
		(
			await server.app.db.query<{ client_msg_id: string; content: string; seq: string }>(
				'SELECT client_msg_id, content, seq FROM messages WHERE room_id = $1 ORDER BY seq',
				[roomId],
			)
		).rows;

	it('lets two members exchange messages and mirrors each one into Postgres exactly once', async () => {
		const { ana, ben, room } = await roomWithTwoMembers();
		const a = open(room.id, ana.accessToken, ana.user.id);
		const b = open(room.id, ben.accessToken, ben.user.id);
		await Promise.all([a.synced(), b.synced()]);

		const sent = [
			a.send('hello from ana'),
			b.send('hi ana, ben here'),
			a.send('line one\nline two, "quoted"'),
		];
		await Promise.all([a.synced(), b.synced()]);
		await waitFor(
			() => a.messages().length === 3 && b.messages().length === 3,
			10_000,
			'both clients to see 3 messages',
		);
		expect(contentsOf(a)).toEqual(contentsOf(b));

		const rows = await mirrored(room.id);
		expect(rows.map((r) => r.client_msg_id).sort()).toEqual(sent.map((m) => m.clientMsgId).sort());
		const seqs = rows.map((r) => Number(r.seq));
		expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);

		const page = await server.api.get(`/api/rooms/${room.id}/messages?limit=2`, ben.accessToken);
		expect(page.body.items).toHaveLength(2);
		expect(page.body.items[1].content).toBe(rows[2]?.content);
		expect(page.body.nextBefore).toBe(Number(rows[1]?.seq));
		const older = await server.api.get(
			`/api/rooms/${room.id}/messages?limit=2&before=${page.body.nextBefore}`,
			ben.accessToken,
		);
		expect(older.body.items.map((m: { clientMsgId: string }) => m.clientMsgId)).toEqual([
			rows[0]?.client_msg_id,
		]);
		expect(older.body.nextBefore).toBeNull();

		const list = await server.api.get('/api/rooms', ben.accessToken);
		expect(list.body.items.find((r: { id: string }) => r.id === room.id).lastMessage.clientMsgId).toBe(
			rows[2]?.client_msg_id,
		);
	});

	it('relays an update to the other members, not back to the writer, who holds it already', async () => {
		const { ana, ben, room } = await roomWithTwoMembers();
		const name = `room:${room.id}`;
		const [writer, other] = await Promise.all([
			RawClient.open(server.wsUrl, name, ana.accessToken),
			RawClient.open(server.wsUrl, name, ben.accessToken),
		]);
		try {
			await Promise.all([writer.authenticated, other.authenticated]);
			/** The document updates (sync messages of type "update") a raw client receives from now on. */
			const updatesTo = (client: RawClient) => {
				const received: number[] = [];
				client.ws.addEventListener('message', (event) => {
					const bytes = new Uint8Array(event.data as ArrayBuffer);
					const decoder = decoding.createDecoder(bytes);
					decoding.readVarString(decoder);
					if (decoding.readVarUint(decoder) === Msg.Sync && decoding.readVarUint(decoder) === 2)
						received.push(bytes.length);
				});
				return received;
			};
			const [toWriter, toOther] = [updatesTo(writer), updatesTo(other)];
			const doc = new Y.Doc();
			const clientMsgId = crypto.randomUUID();
			doc.getMap('messages').set(clientMsgId, {
				kind: 'message',
				clientMsgId,
				senderId: ana.user.id,
				content: 'sent once, relayed once',
				createdAt: new Date().toISOString(),
			});
			writer.sendUpdate(Y.encodeStateAsUpdate(doc));
			await waitFor(() => toOther.length === 1, 10_000, 'the other member to receive the update');
			// One flush sends to every connection at once: a copy for the writer would have gone out with ben's.
			await new Promise((resolve) => setTimeout(resolve, 300));
			expect(toWriter).toEqual([]);
			expect(toOther).toHaveLength(1);
		} finally {
			writer.close();
			other.close();
		}
	});

	it('acks on reconnect the own messages the server holds but never acked (a node died in between)', async () => {
		const { ana, room } = await roomWithTwoMembers();
		const a = open(room.id, ana.accessToken, ana.user.id);
		for (let i = 0; i < 3; i++) a.send(`written before the crash ${i}`);
		await a.synced();
		// The device's copy as it was when the node died: the messages are on the server, the acks never came.
		// Its sync sends nothing new, so only the client's `pending` question gets them acked.
		const copy = new Y.Doc();
		Y.applyUpdate(copy, Y.encodeStateAsUpdate(a.doc));
		const again = connect(server.wsUrl, room.id, ana.accessToken, ana.user.id, { doc: copy });
		clients.push(again);
		expect(again.acked.size).toBe(0);
		await again.synced();
		expect([...again.acked].sort()).toEqual(
			a
				.messages()
				.map((m) => m.clientMsgId)
				.sort(),
		);
	});

	it('gives a late joiner the full history', async () => {
		const { ana, ben, room } = await roomWithTwoMembers();
		const a = open(room.id, ana.accessToken, ana.user.id);
		for (let i = 0; i < 20; i++) a.send(`message ${i}`);
		await a.synced();
		const b = open(room.id, ben.accessToken, ben.user.id);
		await waitFor(() => b.messages().length === 20, 10_000, 'late joiner to get history');
	});

	describe('refuses connections it must refuse, with a reason', () => {
		let fixture: Awaited<ReturnType<typeof roomWithTwoMembers>>;
		let secret: string;
		beforeAll(async () => {
			fixture = await roomWithTwoMembers();
			secret = fs.readFileSync(path.join(server.dataDir, 'jwt-secret'), 'utf8');
		});
		const kid = (s: string) => createHash('sha256').update(s).digest('base64url').slice(0, 12);
		const sign = (claims: { sub: string; exp: number }, key: string) =>
			new SignJWT({ name: 'x', typ: 'access' })
				.setProtectedHeader({ alg: 'HS256', kid: kid(key) })
				.setSubject(claims.sub)
				.setIssuer('chat')
				.setAudience('chat:access')
				.setIssuedAt()
				.setExpirationTime(claims.exp)
				.sign(new TextEncoder().encode(key));

		it('refuses a user who is not a member', async () => {
			const stranger = await server.api.register('mallory');
			expect(await open(fixture.room.id, stranger.accessToken).authFailure).toMatch(/not-a-member/);
		});

		it('refuses a missing token', async () => {
			expect(await open(fixture.room.id, null).authFailure).toMatch(/unauthorized/);
		});

		it('refuses an expired token', async () => {
			const token = await sign({ sub: fixture.ana.user.id, exp: Math.floor(Date.now() / 1000) - 60 }, secret);
			expect(await open(fixture.room.id, token).authFailure).toMatch(/token-expired/);
		});

		it('refuses a token signed with another key', async () => {
			const other = 'another-secret-that-is-long-enough-0123456789';
			const token = await sign({ sub: fixture.ana.user.id, exp: Math.floor(Date.now() / 1000) + 600 }, other);
			expect(await open(fixture.room.id, token).authFailure).toMatch(/unauthorized/);
		});

		it('refuses an alg:none token', async () => {
			const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
			const token = `${b64({ alg: 'none', typ: 'JWT', kid: kid(secret) })}.${b64({
				sub: fixture.ana.user.id,
				name: 'ana',
				typ: 'access',
				iss: 'chat',
				aud: 'chat:access',
				exp: Math.floor(Date.now() / 1000) + 600,
			})}.`;
			expect(await open(fixture.room.id, token).authFailure).toMatch(/unauthorized/);
		});

		it('refuses an unknown room and a document that is not a room', async () => {
			expect(await open('0b6d7a9e-2f4c-4e58-9a1b-7c3d2e1f0a9b', fixture.ana.accessToken).authFailure).toMatch(
				/unknown-document/,
			);
			expect(await open('../../etc/passwd', fixture.ana.accessToken).authFailure).toMatch(/unknown-document/);
		});

		it('refuses a client older than the server accepts, telling it to reload; accepts current and unversioned', async () => {
			const at = (query: string) => {
				const client = connect(`${server.wsUrl}?${query}`, fixture.room.id, fixture.ana.accessToken);
				clients.push(client);
				return client;
			};
			for (const query of [
				`protocol=${OLDEST_CLIENT_PROTOCOL - 1}`,
				'protocol=0',
				'protocol=abc',
				'protocol=',
			]) {
				expect(await at(query).authFailure, query).toMatch(
					new RegExp(
						`^outdated-client: .* the server needs ${OLDEST_CLIENT_PROTOCOL} or later; reload to update$`,
					),
				);
			}
			for (const query of [`protocol=${PROTOCOL_VERSION}`, `protocol=${PROTOCOL_VERSION + 1}`, 'other=1']) {
				const client = at(query);
				await waitFor(() => client.provider.isSynced);
			}
		});

		it('refuses another spelling of a room id: only the lower-case one names the room', async () => {
			const upper = fixture.room.id.toUpperCase();
			expect(await open(upper, fixture.ana.accessToken).authFailure).toMatch(/unknown-document/);
		});
	});

	it('lets a readonly member read, but its writes reach no one and are not stored', async () => {
		const { ana, room } = await roomWithTwoMembers();
		const reader = await server.api.register('reader');
		await server.api.post(
			`/api/rooms/${room.id}/members`,
			{ userId: reader.user.id, role: 'readonly' },
			ana.accessToken,
		);
		const a = open(room.id, ana.accessToken, ana.user.id);
		const r = open(room.id, reader.accessToken, reader.user.id);
		await Promise.all([a.synced(), r.synced()]);

		a.send('only owners speak here');
		await waitFor(() => r.messages().length === 1, 10_000, 'reader to receive');

		// The app would not send it (the core knows the room is read-only); a client that does is refused.
		r.force({ kind: 'message', content: 'can I write?' });
		a.send('after the reader tried');
		await waitFor(() => a.messages().some((m) => m.content === 'after the reader tried'), 10_000);
		await new Promise((resolve) => setTimeout(resolve, 300));
		expect(contentsOf(a)).toEqual(['after the reader tried', 'only owners speak here']);
		expect((await mirrored(room.id)).map((row) => row.content).sort()).toEqual(contentsOf(a));
		const late = open(room.id, ana.accessToken, ana.user.id);
		await late.synced();
		await waitFor(() => late.messages().length === 2, 5_000);
		expect(contentsOf(late)).not.toContain('can I write?');
	});

	it('closes the connection of a member who is removed', async () => {
		const { ana, ben, room } = await roomWithTwoMembers();
		const b = open(room.id, ben.accessToken, ben.user.id);
		await b.synced();
		const closed = new Promise<string>((resolve) =>
			b.provider.on('close', ({ event }: { event: { reason: string } }) => resolve(event.reason)),
		);
		await server.api.delete(`/api/rooms/${room.id}/members/${ben.user.id}`, ana.accessToken);
		expect(await closed).toBe('not-a-member');
	});

	it('refuses an update that forges another sender, and nobody sees it', async () => {
		const { ana, ben, room } = await roomWithTwoMembers();
		const a = open(room.id, ana.accessToken, ana.user.id);
		const b = open(room.id, ben.accessToken, ben.user.id);
		await Promise.all([a.synced(), b.synced()]);
		const closed = new Promise<string>((resolve) =>
			b.provider.on('close', ({ event }: { event: { reason: string } }) => resolve(event.reason)),
		);
		b.send('I am ana, trust me', ana.user.id);
		expect(await closed).toMatch(/invalid-update: senderId/);
		a.send('real ana');
		await a.synced();
		await new Promise((resolve) => setTimeout(resolve, 200));
		expect(contentsOf(a)).toEqual(['real ana']);
		expect((await mirrored(room.id)).map((r) => r.content)).toEqual(['real ana']);
	});

	it('keeps every message across a restart, in the document and in the mirror', async () => {
		const { ana, ben, room } = await roomWithTwoMembers();
		const a = open(room.id, ana.accessToken, ana.user.id);
		const sent = Array.from({ length: 30 }, (_, i) => a.send(`before restart ${i}`));
		await a.synced();
		a.destroy();
		await server.restart();
		const b = open(room.id, ben.accessToken, ben.user.id);
		await waitFor(() => b.messages().length === 30, 15_000, 'history after restart');
		expect(
			b
				.messages()
				.map((m) => m.clientMsgId)
				.sort(),
		).toEqual(sent.map((m) => m.clientMsgId).sort());
		expect(await mirrored(room.id)).toHaveLength(30);
	});

	it('mirrors edits, deletes and reactions; masks deleted content unless an admin asks for it', async () => {
		const { ana, ben, room } = await roomWithTwoMembers();
		const a = open(room.id, ana.accessToken, ana.user.id);
		const b = open(room.id, ben.accessToken, ben.user.id);
		const m = a.send('original secret plan');
		await a.synced();
		await waitFor(() => b.messages().length === 1, 10_000, 'Ben to get the message');
		const edit = a.write({ kind: 'edit', targetId: m.clientMsgId, content: 'edited secret plan' });
		// One after the other: the rows are checked in the order the server received them.
		await a.synced();
		const like = b.write({ kind: 'reaction', targetId: m.clientMsgId, emoji: '👍' });
		await b.synced();
		const del = a.write({ kind: 'delete', targetId: m.clientMsgId });
		await a.synced();

		const rows = (
			await server.app.db.query<{
				client_msg_id: string;
				kind: string;
				content: string;
				target_id: string;
				deleted_by: string | null;
			}>(
				'SELECT client_msg_id, kind, content, target_id, deleted_by FROM messages WHERE room_id = $1 ORDER BY seq',
				[room.id],
			)
		).rows;
		expect(rows.map((r) => [r.kind, r.content, r.target_id, r.deleted_by])).toEqual([
			['message', 'original secret plan', null, ana.user.id],
			['edit', 'edited secret plan', m.clientMsgId, ana.user.id],
			['reaction', '👍', m.clientMsgId, null],
			['delete', null, m.clientMsgId, null],
		]);
		expect(rows.map((r) => r.client_msg_id)).toEqual([m, edit, like, del].map((e) => e.clientMsgId));

		const exported = async (query: string, token: string) => {
			const res = await server.api.get(`/api/rooms/${room.id}/export?format=jsonl${query}`, token);
			return {
				status: res.status,
				rows:
					res.status === 200
						? (res.body as string)
								.trim()
								.split('\n')
								.map((l) => JSON.parse(l))
						: [],
			};
		};
		const plain = await exported('', ben.accessToken);
		expect(plain.rows.map((r) => r.content)).toEqual([null, null, '👍', null]);
		expect((await exported('&includeDeleted=true', ben.accessToken)).status).toBe(403);
		const audit = await exported('&includeDeleted=true', ana.accessToken);
		expect(audit.rows.map((r) => r.content)).toEqual([
			'original secret plan',
			'edited secret plan',
			'👍',
			null,
		]);
		const found = await server.api.get(`/api/search?q=secret`, ana.accessToken);
		expect(found.body.items).toEqual([]);
		const page = await server.api.get(`/api/rooms/${room.id}/messages`, ben.accessToken);
		expect(page.body.items.map((r: { content: string | null }) => r.content)).toEqual([
			null,
			null,
			'👍',
			null,
		]);
	});

	it("lets a group's owner delete anyone's message, but not a 1:1 partner", async () => {
		const { ana, ben, room } = await roomWithTwoMembers();
		const a = open(room.id, ana.accessToken, ana.user.id);
		const b = open(room.id, ben.accessToken, ben.user.id);
		const bens = b.send('said by ben in the group');
		await b.synced();
		await waitFor(() => a.messages().length === 1, 10_000, 'Ana to get it');
		a.write({ kind: 'delete', targetId: bens.clientMsgId });
		await a.synced();
		await waitFor(() => b.events().some((e) => e.kind === 'delete'), 10_000, "Ben to see Ana's delete");

		const direct = await server.api.post(
			'/api/rooms',
			{ isGroup: false, memberIds: [ben.user.id] },
			ana.accessToken,
		);
		const d1 = open(direct.body.id, ana.accessToken, ana.user.id);
		const d2 = open(direct.body.id, ben.accessToken, ben.user.id);
		const anas = d1.send('said by ana in private');
		await d1.synced();
		await waitFor(() => d2.messages().length === 1, 10_000, 'Ben to get it');
		const refused = new Promise<string>((resolve) =>
			d2.provider.on('close', ({ event }: { event: { reason: string } }) => resolve(event.reason)),
		);
		d2.write({ kind: 'delete', targetId: anas.clientMsgId });
		expect(await refused).toMatch(/only its sender or a room owner or admin may delete/);
		expect(d1.events().some((e) => e.kind === 'delete')).toBe(false);
		const rows = await mirrored(direct.body.id);
		expect(rows.map((r) => r.content)).toEqual(['said by ana in private']);
	});

	it('keeps read positions per member, only forward, and tells the room and the reader’s other devices', async () => {
		const { ana, ben, room } = await roomWithTwoMembers();
		const a = open(room.id, ana.accessToken, ana.user.id);
		const b = open(room.id, ben.accessToken, ben.user.id);
		// In display order: written in the same millisecond, they are ordered by clientMsgId.
		const sent = [a.send('one'), a.send('two')].sort(compareEvents);
		await Promise.all([a.synced(), b.synced()]);
		const at = (e: { createdAt: string; clientMsgId: string }) => ({
			at: e.createdAt,
			clientMsgId: e.clientMsgId,
		});

		b.read(at(sent[1]!));
		await waitFor(
			() => a.reads.get(ben.user.id)?.clientMsgId === sent[1]!.clientMsgId,
			10_000,
			'Ana to hear Ben read',
		);
		// Ben hears his own position once it is stored, with the room.
		await waitFor(() => b.reads.get(ben.user.id)?.clientMsgId === sent[1]!.clientMsgId, 10_000, 'Ben');
		expect(b.reads.get(ben.user.id)).toEqual(at(sent[1]!));
		// Going back changes nothing; a second device of Ben's gets his position on its first `read`.
		b.read(at(sent[0]!));
		const second = open(room.id, ben.accessToken, ben.user.id);
		await second.synced();
		second.read(null);
		await waitFor(() => second.reads.size > 0, 10_000, 'the positions for the second device');
		expect(second.reads.get(ben.user.id)).toEqual(at(sent[1]!));
		const stored = await server.app.db.query<{ last_read_id: string }>(
			'SELECT last_read_id FROM read_positions WHERE room_id = $1 AND user_id = $2',
			[room.id, ben.user.id],
		);
		expect(stored.rows.map((r) => r.last_read_id)).toEqual([sent[1]!.clientMsgId]);
	});

	it('writes the positions reported together in one go, and tells the room in one message', async () => {
		const ana = await server.api.register('ana');
		const readers = await Promise.all(['ben', 'cy', 'dee'].map((name) => server.api.register(name)));
		const room = await server.api.createGroup(
			ana.accessToken,
			readers.map((r) => r.user.id),
		);
		const a = open(room.id, ana.accessToken, ana.user.id);
		const message = a.send('read by everyone at once');
		const others = readers.map((r) => open(room.id, r.accessToken, r.user.id));
		await Promise.all([a, ...others].map((c) => c.synced()));
		// Ana's first read is answered with every position (none yet); what follows is what moved.
		a.read(null);
		await waitFor(() => a.readMessages.length === 1, 10_000, 'the positions for Ana');
		for (const c of others) c.read({ at: message.createdAt, clientMsgId: message.clientMsgId });
		await waitFor(() => a.reads.size === readers.length, 10_000, 'Ana to hear all three read');
		// One message per batch instead of one per reader: three reads within a quarter second are one batch (two
		// if the machine stalled in between).
		const told = a.readMessages.slice(1);
		expect(told.flat().sort()).toEqual(readers.map((r) => r.user.id).sort());
		expect(told.length).toBeLessThan(readers.length);
		const stored = await server.app.db.query<{ user_id: string }>(
			'SELECT user_id FROM read_positions WHERE room_id = $1 AND last_read_id = $2',
			[room.id, message.clientMsgId],
		);
		expect(stored.rows.map((r) => r.user_id).sort()).toEqual(readers.map((r) => r.user.id).sort());
	});

	it('exports a room as JSONL and RFC 4180 CSV, to members only', async () => {
		const { ana, ben, room } = await roomWithTwoMembers();
		const a = open(room.id, ana.accessToken, ana.user.id);
		const tricky = ['plain', 'comma, here', 'quote "inside"', 'multi\nline\r\nCRLF', 'emoji 🎉 and ünïcode'];
		for (const t of tricky) a.send(t);
		await a.synced();

		const jsonl = await server.api.get(`/api/rooms/${room.id}/export?format=jsonl`, ben.accessToken);
		expect(jsonl.status).toBe(200);
		expect(jsonl.headers.get('content-type')).toContain('application/x-ndjson');
		const lines = (jsonl.body as string)
			.trimEnd()
			.split('\n')
			.map((l) => JSON.parse(l));
		expect(lines.map((l) => l.content)).toEqual(tricky);
		expect(Object.keys(lines[0])).toEqual(jsonlFields);
		expect(lines[0].senderName).toBe(ana.user.name);

		const csv = await server.api.get(`/api/rooms/${room.id}/export?format=csv`, ben.accessToken);
		expect(csv.headers.get('content-type')).toContain('text/csv');
		const text = csv.body as string;
		expect(
			text.startsWith(
				'seq,room_id,client_msg_id,kind,sender_id,sender_name,content,reply_to_id,target_id,created_at,received_at,attachments\r\n',
			),
		).toBe(true);
		expect(text).toContain('"quote ""inside"""');
		expect(text).toContain('"multi\nline\r\nCRLF"');
		expect(text).toContain('"comma, here"');

		const future = await server.api.get(
			`/api/rooms/${room.id}/export?format=jsonl&since=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`,
			ben.accessToken,
		);
		expect(future.body).toBe('');
		const bad = await server.api.get(`/api/rooms/${room.id}/export?format=xml`, ben.accessToken);
		expect(bad.status).toBe(400);
	});
});

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { canRunCluster, startCluster, type Cluster } from '../helpers/cluster.ts';
import { openChannel, type ChannelClient } from '../helpers/channel.ts';
import { connect, waitFor, type TestClient } from '../helpers/collab.ts';
import { Api } from '../helpers/server.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

/**
 * The design answers within 1 s (each test prints what it measured). The bound allows for a loaded 2-core machine,
 * where a password change alone (scrypt) can take most of a second, yet still fails for anything but the push
 * between nodes: without it, a socket would stay open until its token runs out, minutes later.
 */
const PROMPTLY = 5_000;

type User = Awaited<ReturnType<Api['register']>>;

/** Resolves with the close reason of a client's room connection, and when it came. */
function closedAt(client: TestClient): Promise<{ reason: string; at: number }> {
	return new Promise((resolve) =>
		client.provider.on('close', ({ event }: { event: { reason: string } }) =>
			resolve({ reason: event.reason, at: performance.now() }),
		),
	);
}

/** A letters-only word unique to this test run (Postgres' full-text parser splits digits and hex apart). */
function word(): string {
	return Array.from({ length: 10 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join('');
}

describe.skipIf(!canRunCluster)('continuous authorization on two nodes', () => {
	let cluster: Cluster;
	let api: Api;
	let apiB: Api;
	const clients: TestClient[] = [];

	beforeAll(async () => {
		cluster = await startCluster(2);
		api = cluster.api;
		apiB = new Api(cluster.urls[1] as string);
	});

	afterAll(async () => {
		for (const c of clients) c.destroy();
		await cluster?.close();
	});

	const on = (node: number, roomId: string, user: User, token?: string | (() => Promise<string>)) => {
		const client = connect(cluster.ws(node), roomId, token ?? user.accessToken, user.user.id);
		clients.push(client);
		return client;
	};

	/** What the server holds of a room: the mirror (through the export), search hits for `term`, a fresh reader. */
	async function everywhere(roomId: string, reader: User, term: string) {
		const exported = await api.get(`/api/rooms/${roomId}/export?format=jsonl`, reader.accessToken);
		const rows = (exported.body as string)
			.trim()
			.split('\n')
			.filter(Boolean)
			.map((l) => JSON.parse(l) as { clientMsgId: string; content: string });
		const search = await api.get(`/api/search?q=${term}&roomId=${roomId}`, reader.accessToken);
		const fresh = on(0, roomId, reader);
		await fresh.synced();
		return { rows, hits: (search.body as { items: unknown[] }).items, doc: fresh.messages() };
	}

	it('closes a removed member’s connection on the other node within 1 s, and stores nothing they send after', async () => {
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const room = await api.createGroup(ana.accessToken, [ben.user.id]);
		const b = on(1, room.id, ben);
		const before = b.send('written while a member');
		await b.synced();

		const closed = closedAt(b);
		const removedAt = performance.now();
		const removal = await api.delete(`/api/rooms/${room.id}/members/${ben.user.id}`, ana.accessToken);
		expect(removal.status).toBe(204);
		const { reason, at } = await closed;
		const ms = at - removedAt;
		console.log(`removal → Ben's socket on the other node closed in ${ms.toFixed(0)} ms (${reason})`);
		expect(reason).toBe('not-a-member');
		expect(ms).toBeLessThan(PROMPTLY);

		// Ben writes after the removal (as a client that ignores what it was told), through his old connection and
		// through a new one: neither is stored.
		const term = word();
		const after = b.force({ kind: 'message', content: `after removal ${term}` });
		const again = on(1, room.id, ben);
		expect(await again.authFailure).toBe('not-a-member');
		again.force({ kind: 'message', content: `again ${term}` });
		await new Promise((resolve) => setTimeout(resolve, 500));

		const held = await everywhere(room.id, ana, term);
		expect(held.rows.map((r) => r.clientMsgId)).toEqual([before.clientMsgId]);
		expect(held.hits).toEqual([]);
		expect(held.doc.map((m) => m.clientMsgId)).toEqual([before.clientMsgId]);
		expect(b.acked.has(after.clientMsgId)).toBe(false);
	});

	it('makes a member lowered to readonly read-only on the other node within 1 s', async () => {
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const room = await api.createGroup(ana.accessToken, [ben.user.id]);
		const b = on(1, room.id, ben);
		await b.synced();

		const closed = closedAt(b);
		const changedAt = performance.now();
		const changed = await api.request('PATCH', `/api/rooms/${room.id}/members/${ben.user.id}`, {
			body: { role: 'readonly' },
			token: ana.accessToken,
		});
		expect(changed.status).toBe(200);
		expect(changed.body.members.find((m: { id: string }) => m.id === ben.user.id).role).toBe('readonly');
		const { reason, at } = await closed;
		console.log(`role lowered → Ben's socket on the other node closed in ${(at - changedAt).toFixed(0)} ms`);
		expect(reason).toBe('role-changed');
		expect(at - changedAt).toBeLessThan(PROMPTLY);

		const term = word();
		b.force({ kind: 'message', content: `old connection ${term}` });
		// Reopened, as the app does: read-only now, and what it writes is applied nowhere.
		const reopened = on(1, room.id, ben);
		await waitFor(() => reopened.provider.isSynced, 10_000, 'the read-only reconnect');
		reopened.force({ kind: 'message', content: `read-only ${term}` });
		await new Promise((resolve) => setTimeout(resolve, 500));
		const held = await everywhere(room.id, ana, term);
		expect(held.rows).toEqual([]);
		expect(held.hits).toEqual([]);
		expect(held.doc).toEqual([]);
	});

	it('ends a signed-out session’s sockets on the other node within 1 s, and only that session’s', async () => {
		const ana = await api.register('ana');
		const room = await api.createGroup(ana.accessToken, []);
		const second = (
			await api.post('/api/auth/login', { name: ana.user.name, password: 'a long enough passphrase' })
		).body as User;
		const one = on(1, room.id, ana);
		const two = on(1, room.id, ana, second.accessToken);
		await Promise.all([one.synced(), two.synced()]);

		const closed = closedAt(one);
		const loggedOutAt = performance.now();
		expect((await api.post('/api/auth/logout', { refreshToken: ana.refreshToken })).status).toBe(204);
		const { reason, at } = await closed;
		console.log(
			`logout on node A → that session's socket on node B closed in ${(at - loggedOutAt).toFixed(0)} ms`,
		);
		expect(reason).toBe('session-ended: signed-out');
		expect(at - loggedOutAt).toBeLessThan(PROMPTLY);

		// The other session goes on; the ended one's still unexpired access token opens nothing, anywhere.
		two.send('still here');
		await two.synced();
		const retry = on(0, room.id, ana);
		expect(await retry.authFailure).toBe('session-ended');
		expect((await apiB.get('/api/me', ana.accessToken)).status).toBe(401);
		expect((await apiB.get('/api/me', second.accessToken)).status).toBe(200);
	});

	it('ends every other session when the password changes, and keeps the one that changed it', async () => {
		const ana = await api.register('ana');
		const room = await api.createGroup(ana.accessToken, []);
		const login = async () =>
			(await api.post('/api/auth/login', { name: ana.user.name, password: 'a long enough passphrase' }))
				.body as User;
		const [second, third] = [await login(), await login()];
		const mine = on(1, room.id, ana);
		const others = [on(1, room.id, ana, second.accessToken), on(0, room.id, ana, third.accessToken)];
		await Promise.all([mine, ...others].map((c) => c.synced()));
		const closed = others.map(closedAt);

		const wrong = await api.post(
			'/api/auth/password',
			{ currentPassword: 'not the password', newPassword: 'another long passphrase' },
			ana.accessToken,
		);
		expect(wrong.status).toBe(403);
		const changedAt = performance.now();
		const changed = await api.post(
			'/api/auth/password',
			{ currentPassword: 'a long enough passphrase', newPassword: 'another long passphrase' },
			ana.accessToken,
		);
		expect(changed.status).toBe(204);
		for (const { reason, at } of await Promise.all(closed)) {
			console.log(`password changed → another session's socket closed in ${(at - changedAt).toFixed(0)} ms`);
			expect(reason).toBe('session-ended: password-changed');
			expect(at - changedAt).toBeLessThan(PROMPTLY);
		}
		mine.send('the session that changed the password goes on');
		await mine.synced();
		expect((await api.post('/api/auth/refresh', { refreshToken: second.refreshToken })).status).toBe(401);
		expect(
			(await api.post('/api/auth/login', { name: ana.user.name, password: 'another long passphrase' }))
				.status,
		).toBe(200);
	});
});

describe.skipIf(!canRunCluster)('deleting an account', () => {
	let cluster: Cluster;
	const clients: (TestClient | ChannelClient)[] = [];

	beforeAll(async () => {
		cluster = await startCluster(2);
	});

	afterAll(async () => {
		for (const c of clients) c.destroy();
		await cluster?.close();
	});

	it('ends every socket and token at once, keeps the messages as a deleted user’s, and hands groups over', async () => {
		const { api } = cluster;
		const apiB = new Api(cluster.urls[1] as string);
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const team = await api.createGroup(ben.accessToken, [ana.user.id], 'Ben’s team');
		const alone = await api.createGroup(ben.accessToken, [], 'Ben alone');
		const b = connect(cluster.ws(1), team.id, ben.accessToken, ben.user.id);
		const benChannel = openChannel(cluster.ws(1), ben.user.id, ben.accessToken);
		const anaChannel = openChannel(cluster.ws(0), ana.user.id, ana.accessToken);
		clients.push(b, benChannel, anaChannel);
		const kept = b.send('a message that outlives its sender');
		await b.synced();
		await waitFor(() => anaChannel.room(team.id)?.members.length === 2, 5_000, 'Ana’s state');

		expect(
			(await apiB.request('DELETE', '/api/me', { body: { password: 'wrong' }, token: ben.accessToken }))
				.status,
		).toBe(403);
		const closed = closedAt(b);
		const deleted = await api.request('DELETE', '/api/me', {
			body: { password: 'a long enough passphrase' },
			token: ben.accessToken,
		});
		// From the answer: checking the password (a deliberately slow hash) comes before anything is deleted.
		const deletedAt = performance.now();
		expect(deleted.status).toBe(204);
		const { reason, at } = await closed;
		console.log(
			`account deleted on node A → its socket on node B closed in ${(at - deletedAt).toFixed(0)} ms`,
		);
		expect(reason).toBe('session-ended: account-deleted');
		expect(at - deletedAt).toBeLessThan(PROMPTLY);
		await waitFor(
			() => benChannel.received.some((m) => m.type === 'session-ended' && m.reason === 'account-deleted'),
			5_000,
			'the channel to say why',
		);

		expect((await apiB.get('/api/me', ben.accessToken)).status).toBe(401);
		expect((await apiB.post('/api/auth/refresh', { refreshToken: ben.refreshToken })).status).toBe(401);
		expect(
			(await api.post('/api/auth/login', { name: ben.user.name, password: 'a long enough passphrase' }))
				.status,
		).toBe(401);

		// The team is Ana's now, with Ben's message kept under no name; the group only Ben was in is gone.
		await waitFor(() => anaChannel.room(team.id)?.role === 'owner', 5_000, 'Ana to own the team');
		expect(anaChannel.room(team.id)?.members.map((m) => m.id)).toEqual([ana.user.id]);
		const rows = (
			(await api.get(`/api/rooms/${team.id}/export?format=jsonl`, ana.accessToken)).body as string
		)
			.trim()
			.split('\n')
			.map((l) => JSON.parse(l) as { clientMsgId: string; senderId: string; senderName: string | null });
		expect(rows).toEqual([
			expect.objectContaining({ clientMsgId: kept.clientMsgId, senderId: ben.user.id, senderName: null }),
		]);
		const fresh = await api.register('ana');
		expect((await api.get(`/api/rooms/${alone.id}`, fresh.accessToken)).status).toBe(404);
	});
});

describe.skipIf(!canRunCluster)('a removal that a node does not hear of (its Redis is away)', () => {
	let cluster: Cluster | undefined;
	let proxy: TcpProxy | undefined;
	const clients: TestClient[] = [];

	afterAll(async () => {
		proxy?.restore();
		for (const c of clients) c.destroy();
		await cluster?.close();
		await proxy?.close();
	});

	it('still refuses the removed member’s writes there, and closes their connections once Redis is back', async () => {
		// Node B reaches Redis through a proxy this test cuts; node A reaches it directly.
		const redis = new URL(inject('redisUrl') as string);
		proxy = await new TcpProxy({ host: redis.hostname, port: Number(redis.port || 6379) }).listen();
		const viaProxy = new URL(redis);
		viaProxy.port = String(proxy.port);
		cluster = await startCluster(2, (node): Record<string, string> =>
			node === 1 ? { REDIS_URL: viaProxy.toString() } : {},
		);
		const { api } = cluster;
		const [ana, ben, cleo, dora] = [
			await api.register('ana'),
			await api.register('ben'),
			await api.register('cleo'),
			await api.register('dora'),
		];
		const group = await api.createGroup(ana.accessToken, [ben.user.id, cleo.user.id, dora.user.id]);
		const b = connect(cluster.ws(1), group.id, ben.accessToken, ben.user.id);
		const c = connect(cluster.ws(1), group.id, cleo.accessToken, cleo.user.id);
		const d = connect(cluster.ws(1), group.id, dora.accessToken, dora.user.id);
		clients.push(b, c, d);
		await Promise.all([b.synced(), c.synced(), d.synced()]);

		proxy.cut();
		await api.delete(`/api/rooms/${group.id}/members/${ben.user.id}`, ana.accessToken);
		await api.delete(`/api/rooms/${group.id}/members/${cleo.user.id}`, ana.accessToken);
		// Dora signs out (through node A): her session ends, and node B does not hear of that either.
		expect((await api.post('/api/auth/logout', { refreshToken: dora.refreshToken })).status).toBe(204);
		const benClosed = closedAt(b);
		const cleoClosed = closedAt(c);
		const doraClosed = closedAt(d);
		// Node B never heard of it: Ben's write reaches the durable append, which refuses it.
		const term = word();
		const late = b.send(`written after my removal ${term}`);
		expect((await benClosed).reason).toMatch(/^not-a-member/);
		expect(b.acked.has(late.clientMsgId)).toBe(false);
		const rows = await api.get(`/api/rooms/${group.id}/export?format=jsonl`, ana.accessToken);
		expect(rows.body).toBe('');
		expect((await api.get(`/api/search?q=${term}`, ana.accessToken)).body.items).toEqual([]);

		// Cleo only reads: node B closes her connection when it can check again.
		const restoredAt = performance.now();
		proxy.restore();
		const { reason, at } = await cleoClosed;
		console.log(
			`Redis back on node B → the removed reader's connection closed after ${(at - restoredAt).toFixed(0)} ms`,
		);
		expect(reason).toBe('not-a-member');
		expect((await doraClosed).reason).toBe('session-ended');
	});
});

describe.skipIf(!canRunCluster)('an access token that expires on an open socket', () => {
	let cluster: Cluster;
	const clients: TestClient[] = [];

	beforeAll(async () => {
		// Tokens live 4 s: the server asks for a fresh one halfway through each (they live under a minute). Ten
		// messages a second are more than the default write limit allows one user.
		cluster = await startCluster(2, () => ({ ACCESS_TOKEN_TTL_SECONDS: '4', WRITE_UPDATES_PER_10S: '1000' }));
	});

	afterAll(async () => {
		for (const c of clients) c.destroy();
		await cluster?.close();
	});

	/** Writes a message every 100 ms for `ms` from `client` (replaced by `current()` when it reconnects). */
	async function keepWriting(current: () => TestClient, ms: number): Promise<string[]> {
		const sent: string[] = [];
		const end = Date.now() + ms;
		let i = 0;
		while (Date.now() < end) {
			sent.push(current().send(`message ${i++}`).clientMsgId);
			await new Promise((resolve) => setTimeout(resolve, 100));
		}
		return sent;
	}

	async function exported(roomId: string, token: string): Promise<string[]> {
		const res = await cluster.api.get(`/api/rooms/${roomId}/export?format=jsonl`, token);
		return (res.body as string)
			.trim()
			.split('\n')
			.filter(Boolean)
			.map((l) => (JSON.parse(l) as { clientMsgId: string }).clientMsgId);
	}

	it('renews in place when the client answers with a fresh token: nothing lost, nothing twice, no disconnect', async () => {
		const ana = await cluster.api.register('ana');
		const room = await cluster.api.createGroup(ana.accessToken, []);
		let refreshToken = ana.refreshToken;
		let renewals = 0;
		const fresh = async () => {
			const res = await cluster.api.post('/api/auth/refresh', { refreshToken });
			refreshToken = res.body.refreshToken;
			renewals++;
			return res.body.accessToken as string;
		};
		const client = connect(cluster.ws(1), room.id, fresh, ana.user.id);
		clients.push(client);
		let closes = 0;
		client.provider.on('close', () => closes++);
		await client.synced();
		const sent = await keepWriting(() => client, 10_000);
		await client.synced(20_000);
		const rows = await exported(
			room.id,
			(await cluster.api.post('/api/auth/refresh', { refreshToken })).body.accessToken,
		);
		console.log(
			`renewed in place: sent ${sent.length}, stored ${rows.length}, distinct ${new Set(rows).size}, token renewals ${renewals}, closes ${closes}`,
		);
		expect(renewals).toBeGreaterThanOrEqual(3);
		expect(closes).toBe(0);
		expect(new Set(rows)).toEqual(new Set(sent));
		expect(rows.length).toBe(sent.length);
	});

	it('closes a connection whose token runs out, and the client that reconnects with a new one loses nothing', async () => {
		const ana = await cluster.api.register('ana');
		const room = await cluster.api.createGroup(ana.accessToken, []);
		let refreshToken = ana.refreshToken;
		// One refresh at a time: two with the same refresh token would be a reuse, which ends the session.
		let refreshing: Promise<string> = Promise.resolve('');
		const newToken = () =>
			(refreshing = refreshing.then(async () => {
				const res = await cluster.api.post('/api/auth/refresh', { refreshToken });
				refreshToken = res.body.refreshToken;
				return res.body.accessToken as string;
			}));
		// This client answers the server's request with the token it connected with, so it is closed at expiry;
		// like the app, it then reopens the room (same document) with a new token.
		let client = connect(cluster.ws(1), room.id, ana.accessToken, ana.user.id);
		clients.push(client);
		let expiries = 0;
		const watch = (c: TestClient) =>
			c.provider.on('close', ({ event }: { event: { reason: string } }) => {
				if (event.reason !== 'token-expired') return;
				expiries++;
				void newToken().then((token) => {
					// The device's copy as it is now (what it wrote since is in it), in the reconnecting client.
					const doc = c.doc;
					c.destroy();
					client = connect(cluster.ws(1), room.id, token, ana.user.id, { doc });
					clients.push(client);
					watch(client);
				});
			});
		watch(client);
		const sent = await keepWriting(() => client, 9_000);
		await waitFor(
			async () => (await exported(room.id, await newToken())).length === sent.length,
			20_000,
			'every message to be stored',
		);
		const rows = await exported(room.id, await newToken());
		console.log(
			`closed at expiry and reconnected: sent ${sent.length}, stored ${rows.length}, distinct ${new Set(rows).size}, expiries ${expiries}`,
		);
		expect(expiries).toBeGreaterThanOrEqual(1);
		expect(new Set(rows)).toEqual(new Set(sent));
		expect(rows.length).toBe(sent.length);
	});
});

/**
 * The rule for an update in flight at the moment of removal (docs/security.md): it is stored if its durable append
 * commits before the removal, and written nowhere if after. Shown here against Postgres with the removal (or the
 * role change) held open in a transaction of its own while the append runs: the append's row lock waits for it, and
 * must then see the membership as the change left it (migrations/0016 reads it with the lock, in one statement).
 */
describe.skipIf(!inject('postgresAdminUrl'))('an append racing a membership change', () => {
	/** Ana (owner) and Ben (member) in a room: runs `change` to Ben's membership in an open transaction, then Ben's append. */
	async function racing(change: string): Promise<{ outcome: string; messages: number; log: number }> {
		const { createTestDatabase } = await import('../helpers/backends.ts');
		const { openPostgres } = await import('../../server/db/postgres.ts');
		const { migrate } = await import('../../server/db/migrate.ts');
		const messages = await import('../../server/data/messages.ts');
		const { createLogger } = await import('../../server/log.ts');
		const database = await createTestDatabase();
		const db = await openPostgres(database.url, 4, createLogger('silent'));
		const other = new pg.Client({ connectionString: database.url });
		try {
			await migrate(db);
			const [ana, ben, room] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
			for (const id of [ana, ben])
				await db.query(`INSERT INTO users (id, name, password_hash) VALUES ($1, $2, 'x')`, [
					id,
					`u${id.slice(0, 8)}`,
				]);
			await db.query(`INSERT INTO rooms (id, name, is_group, created_by) VALUES ($1, 'r', true, $2)`, [
				room,
				ana,
			]);
			await db.query(
				`INSERT INTO memberships (room_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'member')`,
				[room, ana, ben],
			);
			// The change first (uncommitted): the append waits for it, then finds what it left.
			await other.connect();
			await other.query('BEGIN');
			await other.query(change, [room, ben]);
			const append = messages
				.durableAppend(
					db,
					[
						{
							roomId: room,
							event: {
								kind: 'message',
								clientMsgId: crypto.randomUUID(),
								senderId: ben,
								content: 'sent as the change commits',
								createdAt: new Date().toISOString(),
							},
						},
					],
					[{ name: `room:${room}`, update: new Uint8Array([1]), writer: { roomId: room, userId: ben } }],
				)
				.then(
					() => 'stored',
					(error: unknown) =>
						error instanceof messages.WritersRefused
							? `refused (${error.refused.get(`${room} ${ben}`) ?? 'not a member'})`
							: String(error),
				);
			await new Promise((resolve) => setTimeout(resolve, 300));
			await other.query('COMMIT');
			const outcome = await append;
			const count = async (sql: string) => (await db.query<{ n: number }>(sql, [room])).rows[0]?.n;
			return {
				outcome,
				messages: (await count('SELECT count(*)::int AS n FROM messages WHERE room_id = $1')) ?? -1,
				log:
					(await count(`SELECT count(*)::int AS n FROM document_updates WHERE name = 'room:' || $1`)) ?? -1,
			};
		} finally {
			await other.end().catch(() => undefined);
			await db.close();
			await database.drop();
		}
	}

	it('waits for a removal in progress, then writes nothing of the update, neither mirror nor log', async () => {
		expect(await racing('DELETE FROM memberships WHERE room_id = $1 AND user_id = $2')).toEqual({
			outcome: 'refused (not a member)',
			messages: 0,
			log: 0,
		});
	});

	it('waits for a change to readonly in progress, then writes nothing of the update', async () => {
		expect(
			await racing(`UPDATE memberships SET role = 'readonly' WHERE room_id = $1 AND user_id = $2`),
		).toEqual({ outcome: 'refused (readonly)', messages: 0, log: 0 });
	});

	it('stores the update once a change that keeps writing rights commits', async () => {
		expect(await racing(`UPDATE memberships SET role = 'admin' WHERE room_id = $1 AND user_id = $2`)).toEqual(
			{
				outcome: 'stored',
				messages: 1,
				log: 1,
			},
		);
	});
});

import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeEachBackend } from '../helpers/backends.ts';
import { connect, writeMany, type TestClient } from '../helpers/collab.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

/**
 * The account's own controls over HTTP (issue 20, check 4): the list of sessions with their devices, signing out
 * the other devices or one of them, and "download my data" checked against the database. The browser side is
 * tests/e2e/account.test.ts.
 */

const CHROME_LINUX =
	'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const FIREFOX_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0';
const PASSWORD = 'a long enough passphrase';

describeEachBackend('account controls', (backend) => {
	let server: TestServer;
	const clients: TestClient[] = [];
	beforeAll(async () => {
		server = await startTestServer(backend);
	});
	afterEach(() => {
		for (const client of clients.splice(0)) client.destroy();
	});
	afterAll(async () => {
		await server?.close();
	});

	async function signIn(name: string, userAgent: string) {
		const res = await server.api.request('POST', '/api/auth/login', {
			body: { name, password: PASSWORD },
			headers: { 'user-agent': userAgent },
		});
		expect(res.status).toBe(200);
		return res.body as { accessToken: string; refreshToken: string };
	}

	it('lists live sessions with their devices, and signs out the others or one of them', async () => {
		const { user } = await server.api.register('sess');
		const laptop = await signIn(user.name, CHROME_LINUX);
		const desktop = await signIn(user.name, FIREFOX_WINDOWS);
		const phone = await signIn(user.name, 'curl/8.5.0');

		const listed = await server.api.get('/api/me/sessions', desktop.accessToken);
		expect(listed.status).toBe(200);
		const devices = listed.body.items.map((s: { device: string | null }) => s.device);
		expect(devices).toEqual(expect.arrayContaining(['Chrome on Linux', 'Firefox on Windows', 'curl']));
		expect(listed.body.items.filter((s: { current: boolean }) => s.current)).toEqual([
			expect.objectContaining({ device: 'Firefox on Windows' }),
		]);
		for (const s of listed.body.items)
			expect(Date.parse(s.lastUsedAt)).toBeGreaterThanOrEqual(Date.parse(s.createdAt));

		// One session ended by its id: its refresh token and its access token stop working, the others do not.
		const phoneId = listed.body.items.find((s: { device: string }) => s.device === 'curl').id;
		expect((await server.api.delete(`/api/me/sessions/${phoneId}`, desktop.accessToken)).body).toEqual({
			ended: 1,
		});
		expect((await server.api.get('/api/me', phone.accessToken)).status).toBe(401);
		expect((await server.api.post('/api/auth/refresh', { refreshToken: phone.refreshToken })).status).toBe(
			401,
		);
		expect((await server.api.get('/api/me', laptop.accessToken)).status).toBe(200);

		// "Sign out other devices": every session but the one asking.
		const others = await server.api.delete('/api/me/sessions/others', desktop.accessToken);
		expect(others.body.ended).toBeGreaterThanOrEqual(2); // the laptop and the registration's session
		expect((await server.api.get('/api/me', laptop.accessToken)).status).toBe(401);
		expect((await server.api.post('/api/auth/refresh', { refreshToken: laptop.refreshToken })).status).toBe(
			401,
		);
		const after = await server.api.get('/api/me/sessions', desktop.accessToken);
		expect(after.body.items).toEqual([
			expect.objectContaining({ current: true, device: 'Firefox on Windows' }),
		]);
		expect((await server.api.get('/api/me', desktop.accessToken)).status).toBe(200);

		// Someone else's session, an unknown one and a malformed id.
		const stranger = await server.api.register('strn');
		const strangerSessions = await server.api.get('/api/me/sessions', stranger.accessToken);
		const foreign = strangerSessions.body.items[0].id;
		expect((await server.api.delete(`/api/me/sessions/${foreign}`, desktop.accessToken)).status).toBe(404);
		expect((await server.api.get('/api/me', stranger.accessToken)).status).toBe(200);
		expect((await server.api.delete('/api/me/sessions/everyone', desktop.accessToken)).status).toBe(400);
	});

	it('downloads every event the user wrote, in every room, as JSONL with counts first', async () => {
		const ana = await server.api.register('expa');
		const ben = await server.api.register('expb');
		const group = await server.api.createGroup(ana.accessToken, [ben.user.id], 'Export me');
		const left = await server.api.createGroup(ben.accessToken, [ana.user.id], 'Left later');
		const a = connect(server.wsUrl, group.id, ana.accessToken, ana.user.id);
		const b = connect(server.wsUrl, group.id, ben.accessToken, ben.user.id);
		const a2 = connect(server.wsUrl, left.id, ana.accessToken, ana.user.id);
		clients.push(a, b, a2);
		await Promise.all([a.synced(), b.synced(), a2.synced()]);
		const mine = await writeMany(a, 230, 'ana says');
		await writeMany(b, 20, 'ben says');
		await writeMany(a2, 5, 'before leaving');
		a.write({ kind: 'edit', targetId: mine[0]!.clientMsgId, content: 'ana says, edited' });
		await a.synced();
		// Ana leaves the second room: what she wrote there is still hers.
		expect(
			(await server.api.delete(`/api/rooms/${left.id}/members/${ana.user.id}`, ana.accessToken)).status,
		).toBe(204);

		const res = await fetch(`${server.url}/api/me/export`, {
			headers: { authorization: `Bearer ${ana.accessToken}` },
		});
		expect(res.status).toBe(200);
		expect(res.headers.get('content-type')).toContain('application/x-ndjson');
		expect(res.headers.get('content-disposition')).toContain('attachment');
		const lines = (await res.text())
			.trimEnd()
			.split('\n')
			.map((line) => JSON.parse(line) as Record<string, any>);
		const [header, ...rest] = lines;
		const rooms = rest.filter((l) => l.type === 'room');
		const events = rest.filter((l) => l.type === 'event');
		const { rows } = await server.app.db.query<{ kind: string; n: number }>(
			'SELECT kind, count(*)::int AS n FROM messages WHERE sender_id = $1 GROUP BY kind',
			[ana.user.id],
		);
		const inDb = Object.fromEntries(rows.map((r) => [r.kind, r.n]));
		expect(inDb.message).toBe(235);
		expect(header).toMatchObject({
			type: 'account',
			id: ana.user.id,
			name: ana.user.name,
			rooms: 1,
			events: 236,
		});
		expect(rooms).toEqual([expect.objectContaining({ id: group.id, name: 'Export me', role: 'owner' })]);
		expect(events).toHaveLength(header!.events);
		expect(events.filter((e) => e.kind === 'message')).toHaveLength(inDb.message!);
		expect(events.filter((e) => e.kind === 'edit')).toHaveLength(inDb.edit!);
		expect(events.every((e) => e.senderId === ana.user.id)).toBe(true);
		expect(new Set(events.map((e) => e.clientMsgId)).size).toBe(events.length);
		expect(events.some((e) => e.roomId === left.id)).toBe(true);
		expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((x, y) => x - y));

		expect((await fetch(`${server.url}/api/me/export`)).status).toBe(401);
	});
});

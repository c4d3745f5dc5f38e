import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEachBackend } from '../helpers/backends.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describeEachBackend('HTTP API', (backend) => {
	let server: TestServer;
	beforeAll(async () => {
		server = await startTestServer(backend);
	});
	afterAll(async () => {
		await server?.close();
	});

	const countUsers = async () =>
		(await server.app.db.query<{ n: number }>('SELECT count(*)::int AS n FROM users')).rows[0]?.n;

	describe('accounts', () => {
		it('registers a user, returns both tokens and sets an httpOnly SameSite=Strict refresh cookie', async () => {
			const res = await server.api.post('/api/auth/register', {
				name: 'Ana_1',
				password: 'pineapple umbrella',
			});
			expect(res.status).toBe(201);
			expect(res.body.user).toMatchObject({ name: 'Ana_1' });
			expect(res.body.accessToken).toMatch(/^ey/);
			expect(res.body.refreshToken.length).toBeGreaterThan(30);
			const cookie = res.headers.get('set-cookie') ?? '';
			expect(cookie).toContain('refresh_token=');
			expect(cookie).toContain('HttpOnly');
			expect(cookie).toContain('SameSite=Strict');
			const me = await server.api.get('/api/me', res.body.accessToken);
			expect(me.body).toEqual(res.body.user);
		});

		it('refuses a name that is taken without regard to case with 409', async () => {
			await server.api.post('/api/auth/register', { name: 'Bruno', password: 'pineapple umbrella' });
			const res = await server.api.post('/api/auth/register', {
				name: 'bRUNO',
				password: 'another passphrase',
			});
			expect(res.status).toBe(409);
			expect(res.body.error.code).toBe('name_taken');
		});

		it('refuses short, overlong and common passwords and bad names with 400 naming the field', async () => {
			const before = await countUsers();
			for (const body of [
				{ name: 'carla', password: 'short' },
				{ name: 'carla', password: 'x'.repeat(129) },
				{ name: 'carla', password: 'password123' },
				{ name: 'carla', password: 'aaaaaaaaaa' },
				{ name: 'carla', password: 'Carla-rocks-2026' },
				{ name: 'ca', password: 'pineapple umbrella' },
				{ name: 'c'.repeat(33), password: 'pineapple umbrella' },
				{ name: 'carla la', password: 'pineapple umbrella' },
				{ name: "carla'; DROP TABLE users;--", password: 'pineapple umbrella' },
			]) {
				const res = await server.api.post('/api/auth/register', body);
				expect(res.status, JSON.stringify(body)).toBe(400);
				expect(res.body.error.code).toBe('validation_failed');
				expect(res.body.error.message.length).toBeGreaterThan(10);
			}
			expect(await countUsers()).toBe(before);
		});

		it('logs in with the right password and gives the same 401 for a wrong password and an unknown name', async () => {
			const { user } = await server.api.register('dora');
			const ok = await server.api.post('/api/auth/login', {
				name: user.name.toUpperCase(),
				password: 'a long enough passphrase',
			});
			expect(ok.status).toBe(200);
			expect(ok.body.user.id).toBe(user.id);
			const wrong = await server.api.post('/api/auth/login', {
				name: user.name,
				password: 'not the password',
			});
			const unknown = await server.api.post('/api/auth/login', {
				name: 'nobody_here',
				password: 'not the password',
			});
			expect(wrong.status).toBe(401);
			expect(unknown.status).toBe(401);
			expect(unknown.body).toEqual(wrong.body);
		});

		it('rotates refresh tokens and revokes the whole family when a used token comes back', async () => {
			const first = await server.api.register('eve');
			const second = await server.api.post('/api/auth/refresh', { refreshToken: first.refreshToken });
			expect(second.status).toBe(200);
			expect(second.body.refreshToken).not.toBe(first.refreshToken);
			const third = await server.api.post('/api/auth/refresh', { refreshToken: second.body.refreshToken });
			expect(third.status).toBe(200);

			// The first token was rotated away: presenting it again is theft.
			const replay = await server.api.post('/api/auth/refresh', { refreshToken: first.refreshToken });
			expect(replay.status).toBe(401);
			// ...so the newest token of that family is dead too.
			const after = await server.api.post('/api/auth/refresh', { refreshToken: third.body.refreshToken });
			expect(after.status).toBe(401);
		});

		it('lets a client whose refresh answer was lost ask again, once, and ends the session on a later replay', async () => {
			const first = await server.api.register('lost');
			// The server rotates the token, but the answer never reaches the page (it reloaded mid-request).
			const lost = await server.api.post('/api/auth/refresh', { refreshToken: first.refreshToken });
			expect(lost.status).toBe(200);
			// The page presents the token it still holds: the session goes on, with a new token.
			const retried = await server.api.post('/api/auth/refresh', { refreshToken: first.refreshToken });
			expect(retried.status).toBe(200);
			expect(retried.body.refreshToken).not.toBe(lost.body.refreshToken);
			// The lost successor is dead; the new one works.
			expect(
				(await server.api.post('/api/auth/refresh', { refreshToken: lost.body.refreshToken })).status,
			).toBe(401);
			// (That was a replay of a rotated token whose successor was used: the family ended.)
			const fresh = await server.api.register('lost2');
			const a = await server.api.post('/api/auth/refresh', { refreshToken: fresh.refreshToken });
			const b = await server.api.post('/api/auth/refresh', { refreshToken: fresh.refreshToken });
			expect(b.status).toBe(200);
			const c = await server.api.post('/api/auth/refresh', { refreshToken: b.body.refreshToken });
			expect(c.status).toBe(200);
			expect(a.status).toBe(200);
			// Once the successor was used, the old token again is theft: the whole session ends.
			const replay = await server.api.post('/api/auth/refresh', { refreshToken: fresh.refreshToken });
			expect(replay.status).toBe(401);
			expect((await server.api.post('/api/auth/refresh', { refreshToken: c.body.refreshToken })).status).toBe(
				401,
			);
		});

		it('refreshes from the cookie alone', async () => {
			const reg = await server.api.post('/api/auth/register', {
				name: 'Fynn',
				password: 'pineapple umbrella',
			});
			const cookie = (reg.headers.get('set-cookie') ?? '').split(';')[0] as string;
			const res = await server.api.request('POST', '/api/auth/refresh', { headers: { cookie } });
			expect(res.status).toBe(200);
			expect(res.body.user.name).toBe('Fynn');
		});

		it('logs out by revoking the refresh token', async () => {
			const { refreshToken } = await server.api.register('gus');
			const out = await server.api.post('/api/auth/logout', { refreshToken });
			expect(out.status).toBe(204);
			expect((await server.api.post('/api/auth/refresh', { refreshToken })).status).toBe(401);
		});

		it('refuses API calls without a valid access token', async () => {
			expect((await server.api.get('/api/me')).status).toBe(401);
			expect((await server.api.get('/api/me', 'not.a.jwt')).status).toBe(401);
			expect((await server.api.get('/api/rooms', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.')).status).toBe(401);
		});

		it('finds users by name', async () => {
			const a = await server.api.register('hanna');
			const res = await server.api.get(
				`/api/users?q=${encodeURIComponent(a.user.name.slice(0, 8))}`,
				a.accessToken,
			);
			expect(res.status).toBe(200);
			expect(res.body.items.map((u: { id: string }) => u.id)).toContain(a.user.id);
			expect(res.body.items[0]).toHaveProperty('lastSeen');
		});
	});

	describe('rooms', () => {
		it('creates a group with the caller as owner and lists it for every member', async () => {
			const owner = await server.api.register('ivy');
			const other = await server.api.register('jon');
			const room = await server.api.createGroup(owner.accessToken, [other.user.id], 'Design');
			expect(room.members).toEqual(
				expect.arrayContaining([
					expect.objectContaining({ id: owner.user.id, role: 'owner' }),
					expect.objectContaining({ id: other.user.id, role: 'member' }),
				]),
			);
			const list = await server.api.get('/api/rooms', other.accessToken);
			expect(list.body.items.map((r: { id: string }) => r.id)).toContain(room.id);
			expect(list.body.items[0]).toHaveProperty('lastMessage', null);
			expect(list.body.items[0].members[0]).toHaveProperty('lastSeen', null);
		});

		it('returns the existing 1:1 room for the same pair with 200', async () => {
			const a = await server.api.register('kai');
			const b = await server.api.register('lea');
			const first = await server.api.post(
				'/api/rooms',
				{ isGroup: false, memberIds: [b.user.id] },
				a.accessToken,
			);
			expect(first.status).toBe(201);
			const again = await server.api.post(
				'/api/rooms',
				{ isGroup: false, memberIds: [a.user.id] },
				b.accessToken,
			);
			expect(again.status).toBe(200);
			expect(again.body.id).toBe(first.body.id);
		});

		it('lets owners and admins add members, and refuses plain members', async () => {
			const owner = await server.api.register('max');
			const member = await server.api.register('nia');
			const newcomer = await server.api.register('oli');
			const room = await server.api.createGroup(owner.accessToken, [member.user.id]);
			const refused = await server.api.post(
				`/api/rooms/${room.id}/members`,
				{ userId: newcomer.user.id },
				member.accessToken,
			);
			expect(refused.status).toBe(403);
			const added = await server.api.post(
				`/api/rooms/${room.id}/members`,
				{ userId: newcomer.user.id, role: 'readonly' },
				owner.accessToken,
			);
			expect(added.status).toBe(201);
			expect(added.body.members).toContainEqual(
				expect.objectContaining({ id: newcomer.user.id, role: 'readonly' }),
			);
			const twice = await server.api.post(
				`/api/rooms/${room.id}/members`,
				{ userId: newcomer.user.id },
				owner.accessToken,
			);
			expect(twice.status).toBe(409);
			const removed = await server.api.delete(
				`/api/rooms/${room.id}/members/${newcomer.user.id}`,
				owner.accessToken,
			);
			expect(removed.status).toBe(204);
			const left = await server.api.delete(
				`/api/rooms/${room.id}/members/${member.user.id}`,
				member.accessToken,
			);
			expect(left.status).toBe(204);
			expect((await server.api.get(`/api/rooms/${room.id}`, member.accessToken)).status).toBe(404);
		});

		it('hides rooms from non-members as not found', async () => {
			const owner = await server.api.register('pia');
			const stranger = await server.api.register('quin');
			const room = await server.api.createGroup(owner.accessToken, []);
			for (const path of [
				`/api/rooms/${room.id}`,
				`/api/rooms/${room.id}/messages`,
				`/api/rooms/${room.id}/export`,
			]) {
				const res = await server.api.get(path, stranger.accessToken);
				expect(res.status, path).toBe(404);
			}
		});
	});

	describe('bad input gets a clear 4xx JSON error and changes nothing', () => {
		it('answers malformed JSON, a wrong content type, missing fields and unknown fields with 4xx', async () => {
			const { accessToken } = await server.api.register('rex');
			const before = await countUsers();
			const cases: [string, Parameters<typeof server.api.request>[2], number][] = [
				['/api/auth/register', { raw: '{"name": "x",' }, 400],
				[
					'/api/auth/register',
					{ raw: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
					415,
				],
				['/api/auth/register', { body: {} }, 400],
				['/api/auth/register', { body: { name: 'valid_name' } }, 400],
				[
					'/api/auth/register',
					{ body: { name: 'valid_name', password: 'long enough pass', admin: true } },
					400,
				],
				['/api/auth/register', { body: [1, 2, 3] }, 400],
				['/api/auth/login', { body: { name: 'x' } }, 400],
				['/api/rooms', { body: { isGroup: 'yes', memberIds: [] }, token: accessToken }, 400],
				['/api/rooms', { body: { isGroup: false, memberIds: [] }, token: accessToken }, 400],
				[
					'/api/rooms',
					{ body: { isGroup: true, name: 'x', memberIds: ["1' OR '1'='1"] }, token: accessToken },
					400,
				],
				[
					'/api/rooms',
					{
						body: { isGroup: true, name: 'x', memberIds: ['00000000-0000-4000-8000-000000000000'] },
						token: accessToken,
					},
					400,
				],
			];
			for (const [path, opts, status] of cases) {
				const res = await server.api.request('POST', path, opts);
				expect(res.status, `${path} ${JSON.stringify(opts)}`).toBe(status);
				expect(res.body.error.code).toEqual(expect.any(String));
				expect(res.body.error.message).toEqual(expect.any(String));
			}
			expect(await countUsers()).toBe(before);
			const rooms = await server.api.get('/api/rooms', accessToken);
			expect(rooms.body.items).toEqual([]);
		});

		it('answers a non-uuid or unknown room id with 400 or 404', async () => {
			const { accessToken } = await server.api.register('sam');
			expect((await server.api.get('/api/rooms/not-a-uuid', accessToken)).status).toBe(400);
			expect((await server.api.get("/api/rooms/1'%20OR%201=1--/messages", accessToken)).status).toBe(400);
			const unknown = await server.api.get(
				'/api/rooms/6f1c1b8e-8a4e-4c89-9d7e-3c1a2b3c4d5e/messages',
				accessToken,
			);
			expect(unknown.status).toBe(404);
			expect(unknown.body.error.code).toBe('not_found');
			expect((await server.api.get('/api/nope', accessToken)).status).toBe(404);
		});

		it('refuses an oversized body with 413', async () => {
			const res = await server.api.post('/api/auth/login', { name: 'x'.repeat(100_000), password: 'y' });
			expect(res.status).toBe(413);
			expect(res.body.error.code).toBe('payload_too_large');
		});
	});

	describe('operations', () => {
		it('writes no password or token to its logs', async () => {
			const name = `logcheck_${backend}`;
			const password = 'secret-marker passphrase 7731';
			const reg = await server.api.post('/api/auth/register', { name, password });
			await server.api.post('/api/auth/login', { name, password: 'wrong-marker passphrase 9931' });
			const refreshed = await server.api.post('/api/auth/refresh', { refreshToken: reg.body.refreshToken });
			await server.api.get(
				`/api/users?q=${encodeURIComponent('private search marker')}`,
				reg.body.accessToken,
			);
			const logs = fs.readFileSync(server.logFile, 'utf8');
			expect(logs).toContain('user registered');
			for (const secret of [
				password,
				'wrong-marker',
				'private search marker',
				'private%20search',
				reg.body.accessToken,
				reg.body.refreshToken,
				refreshed.body.accessToken,
				refreshed.body.refreshToken,
			]) {
				expect(logs.includes(secret), `log contains ${secret.slice(0, 12)}…`).toBe(false);
			}
		});

		it('reports health and readiness of the database', async () => {
			expect((await server.api.get('/healthz')).body).toEqual({ status: 'ok' });
			const ready = await server.api.get('/readyz');
			expect(ready.status).toBe(200);
			expect(ready.body).toMatchObject({
				status: 'ready',
				database: backend,
				checks: { database: { ok: true } },
			});
		});
	});
});

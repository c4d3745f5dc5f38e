import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, waitFor } from '../helpers/collab.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('auth rate limit', () => {
	let server: TestServer;
	beforeAll(async () => {
		server = await startTestServer('pglite', { AUTH_RATE_LIMIT_PER_MINUTE: '3' });
	});
	afterAll(async () => {
		await server?.close();
	});

	it('answers 429 with a JSON error once an address exceeds the configured logins per minute', async () => {
		const statuses: number[] = [];
		for (let i = 0; i < 5; i++) {
			statuses.push(
				(await server.api.post('/api/auth/login', { name: 'nobody', password: 'whatever it is' })).status,
			);
		}
		expect(statuses).toEqual([401, 401, 401, 429, 429]);
		const limited = await server.api.post('/api/auth/login', { name: 'nobody', password: 'whatever it is' });
		expect(limited.body.error.code).toBe('rate_limited');
		expect(limited.body.error.message).toMatch(/try again in \d+ s/);
		expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
	});
});

describe('limits on accounts and collaboration', () => {
	let server: TestServer;
	beforeAll(async () => {
		server = await startTestServer('pglite', {
			LOGIN_FAILURES_PER_NAME: '3',
			WRITE_UPDATES_PER_10S: '5',
			DOCUMENTS_PER_CONNECTION: '2',
		});
	});
	afterAll(async () => {
		await server?.close();
	});

	it('locks a name after repeated failed logins, even for the right password, and leaves other names alone', async () => {
		const victim = await server.api.register('victim');
		const other = await server.api.register('other');
		for (let i = 0; i < 3; i++) {
			expect(
				(await server.api.post('/api/auth/login', { name: victim.user.name, password: 'guess number ' + i }))
					.status,
			).toBe(401);
		}
		const locked = await server.api.post('/api/auth/login', {
			name: victim.user.name,
			password: 'a long enough passphrase',
		});
		expect(locked.status).toBe(429);
		expect(locked.body.error.message).toMatch(/too many failed sign-ins/);
		const fine = await server.api.post('/api/auth/login', {
			name: other.user.name,
			password: 'a long enough passphrase',
		});
		expect(fine.status).toBe(200);
	});

	it('refuses writes over the per-user rate with a reason, and loses none of them: they arrive once the window passes', async () => {
		const ana = await server.api.register('flooder');
		const room = await server.api.createGroup(ana.accessToken, []);
		const a = connect(server.wsUrl, room.id, ana.accessToken, ana.user.id);
		try {
			await a.synced();
			const reasons: string[] = [];
			a.provider.on('close', ({ event }: { event: { reason: string } }) => reasons.push(event.reason));
			for (let i = 0; i < 10; i++) {
				a.send(`burst ${i}`);
				await new Promise((r) => setTimeout(r, 20));
			}
			await waitFor(() => reasons.length > 0, 5_000, 'the rate limit to close the connection');
			expect(reasons[0]).toMatch(/^rate-limited: try again in \d+ s$/);
			expect(a.acked.size).toBeLessThanOrEqual(5);
			await a.synced(30_000);
			expect(a.acked.size).toBe(10);
		} finally {
			a.destroy();
		}
	}, 45_000);

	it('refuses to open more rooms on one connection than allowed', async () => {
		const ana = await server.api.register('hoarder');
		const rooms = await Promise.all([1, 2, 3].map(() => server.api.createGroup(ana.accessToken, [])));
		const socket = new HocuspocusProviderWebsocket({ url: server.wsUrl });
		const failures: string[] = [];
		const providers = rooms.map(
			(room) =>
				new HocuspocusProvider({
					websocketProvider: socket,
					name: `room:${room.id}`,
					token: ana.accessToken,
					onAuthenticationFailed: ({ reason }) => failures.push(reason),
				}),
		);
		try {
			for (const p of providers) p.attach();
			await waitFor(
				() => providers.filter((p) => p.isSynced).length === 2 && failures.length === 1,
				10_000,
				'two rooms open',
			);
			expect(failures).toEqual(['too-many-documents']);
		} finally {
			for (const p of providers) p.destroy();
			socket.destroy();
		}
	});
});

describe('limit on WebSocket connections per address', () => {
	let server: TestServer;
	beforeAll(async () => {
		server = await startTestServer('pglite', { WS_CONNECTIONS_PER_IP_PER_MINUTE: '3' });
	});
	afterAll(async () => {
		await server?.close();
	});

	const upgrade = () =>
		new Promise<number>((resolve, reject) => {
			const url = new URL(server.url);
			const req = http.request({
				host: url.hostname,
				port: url.port,
				path: '/collab',
				headers: {
					Connection: 'Upgrade',
					Upgrade: 'websocket',
					'Sec-WebSocket-Version': '13',
					'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
				},
			});
			req.on('upgrade', (_res, socket) => {
				socket.destroy();
				resolve(101);
			});
			req.on('response', (res) => {
				res.resume();
				resolve(res.statusCode ?? 0);
			});
			req.on('error', reject);
			req.end();
		});

	it('answers 429 with Retry-After once an address opens too many connections in a minute', async () => {
		const statuses = [];
		for (let i = 0; i < 4; i++) statuses.push(await upgrade());
		expect(statuses).toEqual([101, 101, 101, 429]);
	});
});

import { afterEach, describe, expect, inject, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('readiness with Redis configured', () => {
	let server: TestServer | undefined;
	afterEach(async () => {
		await server?.close();
		server = undefined;
	});

	it.skipIf(!inject('redisUrl'))('reports ready when the database and Redis answer', async () => {
		server = await startTestServer('pglite', { REDIS_URL: inject('redisUrl') as string });
		const res = await server.api.get('/readyz');
		expect(res.status).toBe(200);
		expect(res.body.checks).toEqual({ database: { ok: true }, redis: { ok: true } });
		expect((await server.api.get('/metrics')).body).toMatch(/^chat_redis_up 1$/m);
	});

	it('reports degraded (still 200: the node serves its own clients) when Redis does not answer, and still serves the API', async () => {
		// Port 1 on loopback: nothing listens there, so the connection is refused at once.
		server = await startTestServer('pglite', { REDIS_URL: 'redis://127.0.0.1:1' });
		const res = await server.api.get('/readyz');
		expect(res.status).toBe(200);
		expect(res.body.status).toBe('degraded');
		expect(res.body.checks.database).toEqual({ ok: true });
		expect(res.body.checks.redis.ok).toBe(false);
		expect((await server.api.get('/metrics')).body).toMatch(/^chat_redis_up 0$/m);
		expect((await server.api.get('/healthz')).status).toBe(200);
		expect(
			(await server.api.post('/api/auth/register', { name: 'still_up', password: 'pineapple umbrella' }))
				.status,
		).toBe(201);
	});
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

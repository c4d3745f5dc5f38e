import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.ts';

/**
 * HSTS only over TLS (issue 15, finding 4): the server speaks plain HTTP behind a TLS-terminating proxy, so it
 * believes `X-Forwarded-Proto: https` only from a proxy it trusts (TRUST_PROXY); from anyone else the header is a
 * client's claim and gets no HSTS.
 */
describe('Strict-Transport-Security', () => {
	let behindProxy: TestServer;
	let direct: TestServer;
	beforeAll(async () => {
		[behindProxy, direct] = await Promise.all([
			startTestServer('pglite', { TRUST_PROXY: 'loopback' }),
			startTestServer('pglite'),
		]);
	});
	afterAll(async () => {
		await Promise.all([behindProxy?.close(), direct?.close()]);
	});

	const hsts = async (server: TestServer, headers: Record<string, string> = {}) =>
		(await fetch(`${server.url}/api/config`, { headers })).headers.get('strict-transport-security');

	it('is sent when a trusted proxy says the request came over TLS, and not over plain HTTP', async () => {
		expect(await hsts(behindProxy, { 'x-forwarded-proto': 'https' })).toBe(
			'max-age=31536000; includeSubDomains',
		);
		expect(await hsts(behindProxy, { 'x-forwarded-proto': 'http' })).toBeNull();
		expect(await hsts(behindProxy)).toBeNull();
	});

	it('is not sent when an untrusted client claims TLS', async () => {
		expect(await hsts(direct, { 'x-forwarded-proto': 'https' })).toBeNull();
	});
});

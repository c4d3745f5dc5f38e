import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileFilter } from '../../src/lib/protocol/moderation.ts';
import { connect, waitFor } from '../helpers/collab.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

describe('content filter on the server', () => {
	let server: TestServer;
	beforeAll(async () => {
		server = await startTestServer('pglite', { CONTENT_FILTER: 'mask', CONTENT_FILTER_WORDS: 'darn, Heck' });
	});
	afterAll(async () => {
		await server?.close();
	});

	it('publishes its mode and words for clients', async () => {
		const res = await server.api.get('/api/config');
		expect(res.body.contentFilter).toEqual({ mode: 'mask', words: ['darn', 'heck'] });
		expect(res.body.limits.contentMax).toBe(4000);
	});

	it('accepts a message the client masked and refuses one it did not, which nobody sees', async () => {
		const ana = await server.api.register('ana');
		const ben = await server.api.register('ben');
		const room = await server.api.createGroup(ana.accessToken, [ben.user.id]);
		const { contentFilter } = (await server.api.get('/api/config')).body;
		const filter = compileFilter(contentFilter);
		const a = connect(server.wsUrl, room.id, ana.accessToken, ana.user.id);
		const b = connect(server.wsUrl, room.id, ben.accessToken, ben.user.id);
		try {
			await Promise.all([a.synced(), b.synced()]);
			a.send(filter.mask('oh darn, the build broke'));
			await a.synced();
			await waitFor(() => b.messages().length === 1, 5_000);
			expect(b.messages()[0]?.content).toBe('oh ****, the build broke');

			const closed = new Promise<string>((resolve) =>
				a.provider.on('close', ({ event }: { event: { reason: string } }) => resolve(event.reason)),
			);
			a.send('what the heck');
			expect(await closed).toMatch(/content filter/);
			await new Promise((r) => setTimeout(r, 200));
			expect(b.messages().map((m) => m.content)).toEqual(['oh ****, the build broke']);
		} finally {
			a.destroy();
			b.destroy();
		}
	});

	it('refuses to boot with a filter but no words', async () => {
		const { parseConfig } = await import('../../server/config.ts');
		expect(() => parseConfig({ CONTENT_FILTER: 'reject' })).toThrow(
			/Invalid CONTENT_FILTER_WORDS: required when CONTENT_FILTER=reject/,
		);
	});
});

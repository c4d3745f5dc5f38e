import { afterAll, describe, expect, inject, it } from 'vitest';
import { twoMembersConnected, waitFor, type TestClient } from '../helpers/collab.ts';
import type { TestServer } from '../helpers/server.ts';
import { serverBehindProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

describe.skipIf(!inject('postgresAdminUrl'))('a Postgres outage during traffic', () => {
	let server!: TestServer;
	let proxy!: TcpProxy;
	let close: (() => Promise<void>) | undefined;
	const clients: TestClient[] = [];

	afterAll(async () => {
		for (const c of clients) c.destroy();
		await close?.();
	});

	it('loses no acknowledged message, and what was written during the outage arrives afterwards', async () => {
		({ server, proxy, close } = await serverBehindProxy());
		const { ana, room, a, b } = await twoMembersConnected(server, clients);
		for (let i = 0; i < 20; i++) a.send(`before ${i}`);
		await a.synced();
		const ackedBefore = new Set(a.acked);

		proxy.cut();
		for (let i = 0; i < 10; i++) {
			a.send(`during ${i}`);
			b.send(`ben during ${i}`);
			await new Promise((r) => setTimeout(r, 1_000));
		}
		expect((await server.api.get('/readyz')).status).toBe(503);
		proxy.restore();
		const restored = performance.now();

		await Promise.all([a.synced(45_000), b.synced(45_000)]);
		const lastAck = ((performance.now() - restored) / 1000).toFixed(1);
		const exported = await server.api.get(`/api/rooms/${room.id}/export?format=jsonl`, ana.accessToken);
		const ids = (exported.body as string)
			.trim()
			.split('\n')
			.map((l) => (JSON.parse(l) as { clientMsgId: string }).clientMsgId);
		console.log(
			`Postgres outage of 10 s: ${ackedBefore.size} acknowledged before, ${ids.length} rows after recovery; ` +
				`last acknowledgement ${lastAck} s after Postgres came back`,
		);
		expect(ids.length).toBe(40);
		expect(new Set(ids).size).toBe(40);
		for (const id of ackedBefore) expect(ids).toContain(id);
		await waitFor(
			() => a.messages().length === 40 && b.messages().length === 40,
			15_000,
			'both clients to converge',
		);
	}, 90_000);
});

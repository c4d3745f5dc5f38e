import fs from 'node:fs';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { connect, twoMembersConnected, waitFor, type TestClient } from '../helpers/collab.ts';
import type { TestServer } from '../helpers/server.ts';
import { serverBehindProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

/**
 * Issue 17, fault 3: a network black hole between a node and Postgres (packets vanish, no connection closes).
 * Before the timeouts, the node's writes hung for the whole partition with no refusal, no log line and no
 * readiness answer. Now it must refuse retryably within seconds, say so in its log, metrics and readiness, and
 * acknowledge everything once the network heals.
 */
describe.skipIf(!inject('postgresAdminUrl'))('a node cut off from Postgres by a black hole', () => {
	let server!: TestServer;
	let proxy!: TcpProxy;
	let close: (() => Promise<void>) | undefined;
	const clients: TestClient[] = [];

	afterAll(async () => {
		for (const c of clients) c.destroy();
		await close?.();
	});

	it('refuses retryably within seconds, says so, fails readiness, and acknowledges all once healed', async () => {
		({ server, proxy, close } = await serverBehindProxy());
		const { ben, room, a } = await twoMembersConnected(server, clients);
		const written = new Set<string>();
		for (let i = 0; i < 5; i++) written.add(a.send(`before ${i}`).clientMsgId);
		await a.synced();
		const closes: string[] = [];
		a.provider.on('close', ({ event }: { event: { reason: string } }) => closes.push(event.reason));
		const logBefore = fs.statSync(server.logFile).size;

		proxy.blackhole();
		const started = performance.now();
		const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
		for (let i = 0; i < 3; i++) written.add(a.send(`during ${i}`).clientMsgId);

		// Readiness answers, and says the database is away.
		const ready = await server.api.get('/readyz');
		const readyAfter = seconds();
		expect(ready.status).toBe(503);

		// The writer is refused with a reason its client retries, not left waiting.
		await waitFor(
			() => closes.some((r) => r.startsWith('storage-unavailable')),
			25_000,
			'storage-unavailable',
		);
		const refusedAfter = seconds();

		// A room login during the partition is refused the same way: never `permission-denied`.
		const late = connect(server.wsUrl, room.id, ben.accessToken, ben.user.id);
		clients.push(late);
		const loginStarted = performance.now();
		const reason = await Promise.race([
			late.authFailure,
			new Promise<string>((resolve) => setTimeout(() => resolve('no answer in 25 s'), 25_000)),
		]);
		const loginAfter = ((performance.now() - loginStarted) / 1000).toFixed(1);
		expect(reason).toBe('storage-unavailable');
		late.destroy();

		// The log and the metrics say so.
		const log = fs.readFileSync(server.logFile, 'utf8').slice(logBefore);
		expect(log).toMatch(/timeout/i);
		const metrics = (await server.api.get('/metrics')).body as string;
		expect(metrics).toMatch(/chat_updates_rejected_total\{reason="storage-unavailable"\} [1-9]/);

		proxy.heal();
		const healed = performance.now();
		for (let i = 0; i < 2; i++) written.add(a.send(`after ${i}`).clientMsgId);
		await a.synced(30_000);
		const ackedAfter = ((performance.now() - healed) / 1000).toFixed(1);
		console.log(
			`black hole: readyz 503 after ${readyAfter} s, writer refused (storage-unavailable) after ${refusedAfter} s, ` +
				`a new login refused after ${loginAfter} s; healed: every message acknowledged ${ackedAfter} s later`,
		);
		const exported = await server.api.get(`/api/rooms/${room.id}/export?format=jsonl`, ben.accessToken);
		const ids = (exported.body as string)
			.trim()
			.split('\n')
			.map((l) => (JSON.parse(l) as { clientMsgId: string }).clientMsgId);
		expect(ids.length).toBe(new Set(ids).size);
		expect(new Set(ids)).toEqual(written);
	}, 120_000);
});

import { afterAll, describe, expect, inject, it } from 'vitest';
import { canRunCluster, startCluster, type Cluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/collab.ts';
import { Api } from '../helpers/server.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

describe.skipIf(!canRunCluster)('a Redis outage in a two-node cluster', () => {
	let cluster: Cluster | undefined;
	let proxy: TcpProxy | undefined;

	afterAll(async () => {
		proxy?.restore();
		await cluster?.close();
		await proxy?.close();
	});

	it('keeps both nodes serving their own clients, reports degraded, and converges when Redis returns', async () => {
		// Never the shared Redis server itself: the nodes reach it through a proxy this test cuts.
		const redis = new URL(inject('redisUrl') as string);
		proxy = await new TcpProxy({ host: redis.hostname, port: Number(redis.port || 6379) }).listen();
		redis.port = String(proxy.port);
		cluster = await startCluster(2, () => ({ REDIS_URL: redis.toString() }));
		const { api } = cluster;
		const [ana, ben, cara, dan] = [
			await api.register('ana'),
			await api.register('ben'),
			await api.register('cara'),
			await api.register('dan'),
		];
		const room = await api.createGroup(ana.accessToken, [ben.user.id, cara.user.id]);
		const quiet = await api.createGroup(dan.accessToken, [ben.user.id]);
		const a = cluster.open(0, room.id, ana);
		const b = cluster.open(1, room.id, ben);
		await Promise.all([a.synced(), b.synced()]);
		for (let i = 0; i < 5; i++) {
			a.send(`A before ${i}`);
			b.send(`B before ${i}`);
		}
		await waitFor(
			() => a.messages().length === 10 && b.messages().length === 10,
			10_000,
			'both sides to have the first 10',
		);

		proxy.cut();
		const cutAt = Date.now();
		for (let i = 0; i < 10; i++) {
			a.send(`A during ${i}`);
			b.send(`B during ${i}`);
			await new Promise((r) => setTimeout(r, 300));
		}
		// Each node still acknowledges its own clients' writes: Postgres is there.
		await Promise.all([a.synced(5_000), b.synced(5_000)]);
		for (const url of cluster.urls) {
			const ready = await new Api(url).get('/readyz');
			expect(ready.status).toBe(200);
			expect(ready.body.status).toBe('degraded');
			expect(ready.body.checks.redis.ok).toBe(false);
		}
		// A new connection to a loaded room, and a room nobody had open, are served during the outage too.
		const c = cluster.open(0, room.id, cara);
		await c.synced(5_000);
		expect(c.messages().length).toBeGreaterThanOrEqual(10);
		const d = cluster.open(0, quiet.id, dan);
		await d.synced(5_000);
		d.send('written in a room first opened while Redis was away');
		await d.synced(5_000);
		// Until Redis returns, each side has only its own node's writes of the outage.
		expect(a.messages().length).toBeLessThan(30);

		// Failover during the outage: clients of node B move to node A and bring entries by other users that node
		// A never got over Redis. It finds them in the durable log and refuses none, also when they come one after
		// another faster than it re-reads the log.
		const crowd = [];
		for (let i = 0; i < 3; i++) crowd.push(await api.register(`crowd${i}`));
		const busy = await api.createGroup(
			ana.accessToken,
			crowd.map((u) => u.user.id),
		);
		const watcher = cluster.open(0, busy.id, ana);
		const movers = crowd.map((u) => cluster!.open(1, busy.id, u));
		await Promise.all([watcher.synced(5_000), ...movers.map((m) => m.synced(5_000))]);
		const moveToA = (m: (typeof movers)[0]) => {
			m.socket.configuration.url = cluster!.ws(0);
			m.socket.webSocket?.close();
		};
		movers.forEach((m, i) => m.send(`crowd ${i}`));
		await waitFor(() => movers.every((m) => m.messages().length === 3), 5_000, 'node B clients to converge');
		moveToA(movers[0]!);
		await waitFor(
			() => watcher.messages().length === 3,
			5_000,
			'the first mover to bring the entries to node A',
		);
		movers[1]!.send('written on node B after the first mover left');
		await waitFor(() => movers[2]!.messages().length === 4, 5_000, 'the last client on B to receive it');
		moveToA(movers[2]!);
		await waitFor(() => watcher.messages().length === 4, 5_000, 'the second mover to bring it to node A');
		moveToA(movers[1]!);
		await Promise.all(movers.map((m) => m.synced(5_000)));
		expect(cluster.nodes[0]?.output()).not.toContain('update rejected');

		await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - cutAt))));
		proxy.restore();
		const restoredAt = Date.now();
		await waitFor(
			() => [a, b, c].every((client) => client.messages().length === 30),
			30_000,
			'every client of the room to hold all 30 messages',
		);
		const converged = Date.now() - restoredAt;
		const ids = (client: typeof a) => new Set(client.messages().map((m) => m.clientMsgId));
		expect(ids(b)).toEqual(ids(a));
		expect(ids(c)).toEqual(ids(a));
		// Ben on node B sees Dan's message of the outage in the quiet room, and both nodes are ready again.
		const late = cluster.open(1, quiet.id, ben);
		await waitFor(() => late.messages().length === 1, 10_000, 'the quiet room on node B');
		await waitFor(
			async () => {
				const states = await Promise.all(cluster!.urls.map((url) => new Api(url).get('/readyz')));
				return states.every((s) => s.body.status === 'ready');
			},
			10_000,
			'both nodes to report ready',
		);
		const rows = await api.get(`/api/rooms/${room.id}/messages?limit=100`, ana.accessToken);
		expect(rows.body.items).toHaveLength(30);
		console.log(
			`Redis outage of 10 s: converged ${converged} ms after Redis returned; 30 messages on both nodes`,
		);
	}, 90_000);
});

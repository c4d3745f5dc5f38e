import { afterAll, describe, expect, it } from 'vitest';
import { canRunCluster, expectRoomEverywhere, startCluster, type Cluster } from '../helpers/cluster.ts';
import { waitFor, type TestClient } from '../helpers/collab.ts';

describe.skipIf(!canRunCluster)('a node crash in a two-node cluster', () => {
	let cluster: Cluster | undefined;

	afterAll(async () => {
		await cluster?.close();
	});

	it('loses no acknowledged message and duplicates none when a node is SIGKILLed mid-stream', async () => {
		cluster = await startCluster(2, () => ({ WRITE_UPDATES_PER_10S: '100000' }));
		const { api } = cluster;

		// 20 users in two rooms of 10; clients alternate between the nodes.
		const users = [];
		for (let i = 0; i < 20; i++) users.push(await api.register(`crash${i}`));
		const rooms = [];
		for (let r = 0; r < 2; r++) {
			const members = users.slice(r * 10, r * 10 + 10);
			const [owner, ...rest] = members as [(typeof users)[0], ...(typeof users)[0][]];
			rooms.push({
				id: (
					await api.createGroup(
						owner.accessToken,
						rest.map((u) => u.user.id),
					)
				).id,
				members,
			});
		}
		const perClient: { client: TestClient; roomId: string; node: number }[] = [];
		for (const room of rooms) {
			room.members.forEach((user, i) => {
				const node = i % 2;
				const client = cluster!.open(node, room.id, user);
				perClient.push({ client, roomId: room.id, node });
			});
		}
		await Promise.all(perClient.map((p) => p.client.synced(20_000)));

		const PER_CLIENT = 100; // 20 clients × 100 = 2,000 messages
		let sent = 0;
		const pumps = perClient.map(async ({ client }) => {
			for (let i = 0; i < PER_CLIENT; i++) {
				client.send(`message ${i}`);
				sent++;
				await new Promise((r) => setTimeout(r, 5 + Math.random() * 10));
			}
		});
		await waitFor(() => sent >= 800, 60_000, '800 messages written');
		await cluster.kill(0);
		const ackedAtCrash = perClient.reduce((n, p) => n + p.client.acked.size, 0);
		// As behind a load balancer: half of node A's clients reconnect to node B, the others wait for A.
		const moved = perClient.filter((p) => p.node === 0).filter((_, i) => i % 2 === 0);
		for (const p of moved) {
			p.client.socket.configuration.url = cluster.ws(1);
			p.node = 1;
		}
		await new Promise((r) => setTimeout(r, 1_000));
		await cluster.restart(0);
		const restarted = cluster.nodes[0]!;
		await Promise.all(pumps);
		await Promise.all(perClient.map((p) => p.client.synced(60_000))).catch((error) => {
			// Which clients are stuck, and what the restarted node refused, to make a failure readable.
			console.log(
				perClient.map((p) => `node ${p.node}: ${p.client.acked.size}/${PER_CLIENT} acked`).join('; '),
			);
			console.log(
				restarted
					.output()
					.split('\n')
					.filter((l) => l.includes('update rejected'))
					.slice(-5)
					.join('\n'),
			);
			throw error;
		});

		// Every acknowledged message, once, everywhere.
		const acked = new Set(perClient.flatMap((p) => [...p.client.acked]));
		let totalRows = 0;
		for (const room of rooms) {
			const inRoom = perClient.filter((p) => p.roomId === room.id);
			// Every client is synced: what its sender wrote is acknowledged, so this is all that was written.
			const expected = new Set(inRoom.flatMap((p) => [...p.client.acked]));
			await waitFor(
				() => inRoom.every((p) => p.client.messages().length === expected.size),
				30_000,
				'every client of the room to converge',
			);
			for (const p of inRoom)
				expect(new Set(p.client.messages().map((m) => m.clientMsgId))).toEqual(expected);
			totalRows += await expectRoomEverywhere(cluster, room.id, room.members[0]!, expected);
		}
		const missing = [...acked].filter(
			(id) => !perClient.some((p) => p.client.messages().some((m) => m.clientMsgId === id)),
		);
		console.log(
			`two-node crash: ${sent} written, ${ackedAtCrash} acknowledged when node A was killed, ${moved.length} of its clients ` +
				`moved to node B, ${acked.size} acknowledged in the end, ${totalRows} rows in messages, ` +
				`${missing.length} acknowledged but missing`,
		);
		expect(missing).toEqual([]);
		expect(totalRows).toBe(2_000);
	}, 180_000);
});

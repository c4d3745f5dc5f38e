import * as Y from 'yjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MessageEvent } from '../../src/lib/protocol/events.ts';
import { canRunCluster, expectRoomEverywhere, startCluster, type Cluster } from '../helpers/cluster.ts';
import { waitFor, type TestClient } from '../helpers/collab.ts';
import { sized } from '../helpers/long-run.ts';

/**
 * Randomised convergence: 20 devices in two rooms on two nodes write, go offline, reload (a new Y.Doc from the
 * device's stored state, acks forgotten) and reconnect, possibly to the other node, for 1,500 steps per seed in
 * `npm test` and 5,000 in `npm run test:long` (FUZZ_STEPS=<n> sets it). At the end every device, both nodes and the
 * Postgres mirror must hold exactly the messages that were written.
 *
 * A run's seed is printed. Reproduce a run with FUZZ_SEED=<seed>; add a seed that failed to REGRESSION_SEEDS so
 * it runs on every `npm test` from then on.
 */
const REGRESSION_SEEDS: number[] = [
	// Left devices offline for good: a connect() right after disconnect() was a no-op (see bringOnline).
	1206353193,
	// Devices re-sending other users' entries were refused ("this Yjs client id belongs to another user"): a
	// compaction had deleted a log entry it never folded (an append with a smaller id committed after its read).
	// Timing-dependent: it passed when run again; the deterministic test is in durable-append.test.ts.
	1116954938,
	// The outside run's failure under load (issue 17: two fuzz processes at once), with the same refusals as the
	// one above; the cause found for those is tested deterministically in durable-append.test.ts.
	1830048380,
];
// A kept seed replays the first STEPS steps of the run that failed: the same writes, offline periods and moves.
const STEPS = sized(1_500, 5_000, 'FUZZ_STEPS');

/** mulberry32: a small, fast PRNG whose sequence is fixed by its seed. */
function random(seed: number) {
	let a = seed >>> 0;
	const next = () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
	return { next, int: (n: number) => Math.floor(next() * n), chance: (p: number) => next() < p };
}

interface Device {
	user: { accessToken: string; user: { id: string } };
	roomId: string;
	node: number;
	client: TestClient;
	online: boolean;
	/** Steps left offline. */
	offlineFor: number;
}

describe.skipIf(!canRunCluster)('convergence under random offline periods, reloads and reconnects', () => {
	let cluster: Cluster;

	beforeAll(async () => {
		cluster = await startCluster(2, () => ({
			WRITE_UPDATES_PER_10S: '100000',
			WRITE_MESSAGES_PER_10S: '100000',
			WS_CONNECTIONS_PER_IP_PER_MINUTE: '100000',
		}));
	});

	afterAll(async () => {
		await cluster?.close();
	});

	// A campaign (scripts/fuzz-campaign.ts) runs one seed per run: FUZZ_ONLY_SEED leaves the kept ones out.
	const seed0 = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
	const seeds = process.env.FUZZ_ONLY_SEED ? [seed0] : [seed0, ...REGRESSION_SEEDS];
	for (const [i, seed] of seeds.entries()) {
		it(`converges everywhere (seed ${seed}${i > 0 ? ', a kept regression' : ''})`, async () => {
			console.log(`convergence fuzz: seed ${seed} (reproduce with FUZZ_SEED=${seed})`);
			await run(cluster, seed);
		}, 240_000);
	}
});

/**
 * Connects a device that should be online. A `connect()` right after `disconnect()` is a no-op while the old
 * socket is still closing, so this is called again whenever the device is picked.
 */
function bringOnline(d: Device): string {
	const { status } = d.client.socket;
	if (status === 'disconnected') void d.client.socket.connect().catch(() => {});
	return status;
}

async function run(cluster: Cluster, seed: number) {
	const rng = random(seed);
	const { api } = cluster;
	const users = [];
	for (let i = 0; i < 20; i++) users.push(await api.register(`fuzz${i}`));
	const rooms: string[] = [];
	for (let r = 0; r < 2; r++) {
		const [owner, ...rest] = users.slice(r * 10, r * 10 + 10) as [(typeof users)[0], ...(typeof users)[0][]];
		rooms.push(
			(
				await api.createGroup(
					owner.accessToken,
					rest.map((u) => u.user.id),
				)
			).id,
		);
	}
	const devices: Device[] = users.map((user, i) => {
		const node = rng.int(2);
		const roomId = rooms[Math.floor(i / 10)] as string;
		return { user, roomId, node, client: cluster.open(node, roomId, user), online: true, offlineFor: 0 };
	});
	await Promise.all(devices.map((d) => d.client.synced(20_000)));

	const written = new Map<string, Set<string>>(rooms.map((r) => [r, new Set()]));
	/** Every message a sender saw acknowledged, across reloads. */
	const acked = new Set<string>();
	const counts = { send: 0, offline: 0, online: 0, reload: 0, move: 0, failover: 0 };
	const collectAcks = (d: Device) => d.client.acked.forEach((id) => acked.add(id));

	for (let step = 0; step < STEPS; step++) {
		const d = devices[rng.int(devices.length)] as Device;
		if (!d.online && --d.offlineFor <= 0) {
			d.online = true;
			counts.online++;
		}
		if (d.online) bringOnline(d);
		const roll = rng.next();
		if (roll < 0.002) {
			// Every connection of one node drops at once and lands on the other node, as when a node dies
			// behind a load balancer: many clients bring entries the other node may not hold yet.
			const from = rng.int(2);
			for (const other of devices) {
				if (other.node !== from) continue;
				other.node = 1 - from;
				other.client.socket.configuration.url = cluster.ws(other.node);
				other.client.socket.webSocket?.close();
			}
			counts.failover++;
		} else if (roll < 0.65) {
			const event = d.client.send(`step ${step}`);
			written.get(d.roomId)?.add(event.clientMsgId);
			counts.send++;
		} else if (roll < 0.75 && d.online) {
			d.online = false;
			// Mostly short; now and then a long one that builds a backlog (a flight).
			d.offlineFor = 1 + rng.int(rng.chance(0.15) ? 300 : 30);
			counts.offline++;
			d.client.socket.disconnect();
		} else if (roll < 0.8) {
			// A reload: the device's stored state in a new Y.Doc (a new client id), its acks forgotten, and a
			// connection to either node, as behind a load balancer. It stays offline if it was.
			collectAcks(d);
			const stored = Y.encodeStateAsUpdate(d.client.doc);
			d.client.destroy();
			const doc = new Y.Doc();
			Y.applyUpdate(doc, stored);
			d.node = rng.int(2);
			d.client = cluster.open(d.node, d.roomId, d.user, { doc });
			if (!d.online) d.client.socket.disconnect();
			counts.reload++;
		} else if (roll < 0.87 && d.online) {
			// The connection drops, and the provider's reconnect lands on the other node.
			d.node = 1 - d.node;
			d.client.socket.configuration.url = cluster.ws(d.node);
			d.client.socket.webSocket?.close();
			counts.move++;
		}
		if (rng.chance(0.3)) await new Promise((r) => setTimeout(r, rng.int(8)));
	}

	for (const d of devices) d.online = true;
	await waitFor(
		() => devices.every((d) => bringOnline(d) === 'connected'),
		30_000,
		'every device to be connected',
	);
	await Promise.all(devices.map((d) => d.client.synced(60_000))).catch(async (error) => {
		// What is stuck, to make a failure readable.
		for (const [i, d] of devices.entries()) {
			const own = d.client.messages().filter((m) => m.senderId === d.user.user.id);
			const unacked = own.filter((m) => !d.client.acked.has(m.clientMsgId));
			if (unacked.length === 0 && d.client.provider.isSynced) continue;
			const rows = await api.get(`/api/rooms/${d.roomId}/messages?limit=100`, d.user.accessToken);
			console.log(
				`device ${i} on node ${d.node}: socket ${d.client.socket.status}, synced ${d.client.provider.isSynced}, ` +
					`unsynced changes ${d.client.provider.unsyncedChanges}, ${unacked.length} of ${own.length} own unacked ` +
					`(${unacked.slice(0, 3).map((m) => m.clientMsgId)}); latest rows hold ${
						unacked.filter((m) =>
							(rows.body.items as { clientMsgId: string }[]).some((r) => r.clientMsgId === m.clientMsgId),
						).length
					} of them`,
			);
		}
		for (const [n, node] of cluster.nodes.entries()) {
			console.log(
				`node ${n}:\n${node
					.output()
					.split('\n')
					.filter((l) => /"level":(40|50|60)/.test(l))
					.slice(-8)
					.join('\n')}`,
			);
		}
		throw error;
	});
	devices.forEach(collectAcks);

	let rows = 0;
	for (const roomId of rooms) {
		const expected = written.get(roomId) as Set<string>;
		const idsOf = (messages: MessageEvent[]) => new Set(messages.map((m) => m.clientMsgId));
		const inRoom = devices.filter((d) => d.roomId === roomId);
		await waitFor(
			() => inRoom.every((d) => d.client.messages().length === expected.size),
			30_000,
			'every device of the room to converge',
		);
		for (const d of inRoom) expect(idsOf(d.client.messages())).toEqual(expected);
		rows += await expectRoomEverywhere(cluster, roomId, inRoom[0]?.user as Device['user'], expected);
	}
	const total = [...written.values()].reduce((n, s) => n + s.size, 0);
	console.log(
		`convergence fuzz (seed ${seed}): ${STEPS} steps — ${counts.send} sends, ${counts.offline} offline periods, ` +
			`${counts.reload} reloads, ${counts.move} moves to the other node, ${counts.failover} failovers of a whole node; ${total} written, ${acked.size} acked, ` +
			`${rows} rows in Postgres, every replica identical`,
	);
	expect(rows).toBe(total);
	expect(acked.size).toBe(total);
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunCluster, startCluster, type Cluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/collab.ts';
import { RawClient } from '../helpers/raw-ws.ts';
import { Api } from '../helpers/server.ts';

describe.skipIf(!canRunCluster)('two nodes through Redis', () => {
	let cluster: Cluster;

	beforeAll(async () => {
		cluster = await startCluster(2);
	});

	afterAll(async () => {
		await cluster?.close();
	});

	const open: Cluster['open'] = (...args) => cluster.open(...args);

	type Registered = Awaited<ReturnType<Cluster['api']['register']>>;
	/** Registers each name, and a group room of them all that the first created. */
	async function groupRoom<N extends string>(...names: [N, ...N[]]) {
		const users = {} as Record<N, Registered>;
		for (const name of names) users[name] = await cluster.api.register(name);
		const [owner, ...others] = names.map((name) => users[name]);
		const room = await cluster.api.createGroup(
			owner!.accessToken,
			others.map((u) => u.user.id),
		);
		return { room, ...users };
	}

	it('lets clients on node A and node B exchange messages, typing and presence, and gives a late joiner on B the history', async () => {
		const { room, ana, ben, cara } = await groupRoom('ana', 'ben', 'cara');
		const a = open(0, room.id, ana);
		const b = open(1, room.id, ben);
		await Promise.all([a.synced(), b.synced()]);

		for (let i = 0; i < 10; i++) {
			a.send(`from A ${i}`);
			b.send(`from B ${i}`);
		}
		await Promise.all([a.synced(), b.synced()]);
		await waitFor(
			() => a.messages().length === 20 && b.messages().length === 20,
			10_000,
			'both sides to have 20',
		);

		b.provider.awareness?.setLocalState({ user: { color: '#123456' }, typing: true });
		await waitFor(
			() =>
				[...(a.provider.awareness?.getStates().values() ?? [])].some(
					(s) => s.typing === true && s.user?.id === ben.user.id,
				),
			10_000,
			'Ana on A to see Ben on B typing',
		);

		// A read position reported on B reaches A (stateless broadcast through Redis).
		const newest = b.messages().at(-1)!;
		b.read({ at: newest.createdAt, clientMsgId: newest.clientMsgId });
		await waitFor(
			() => a.reads.get(ben.user.id)?.clientMsgId === newest.clientMsgId,
			10_000,
			'Ana on A to see Ben read',
		);

		const late = open(1, room.id, cara);
		await late.synced();
		await waitFor(() => late.messages().length === 20, 10_000, 'the late joiner on B to get the history');

		const rows = await cluster.api.get(`/api/rooms/${room.id}/messages?limit=100`, ana.accessToken);
		expect(rows.body.items).toHaveLength(20);
	});

	it('reports Redis in readiness on both nodes', async () => {
		for (const url of cluster.urls) {
			const ready = await new Api(url).get('/readyz');
			expect(ready.body.checks.redis).toEqual({ ok: true });
		}
	});

	it('takes a user out of presence on the other node at once when they leave or close, not after 30 s', async () => {
		const { room, ana, ben, cara } = await groupRoom('ana', 'ben', 'cara');
		const a = open(0, room.id, ana);
		const b = open(1, room.id, ben);
		const c = open(1, room.id, cara);
		await Promise.all([a.synced(), b.synced(), c.synced()]);
		const seenOnA = (userId: string) =>
			[...(a.provider.awareness?.getStates().values() ?? [])].some((s) => s.user?.id === userId);
		b.provider.awareness?.setLocalState({ user: { color: '#123456' }, typing: false });
		c.provider.awareness?.setLocalState({ user: { color: '#654321' }, typing: false });
		await waitFor(
			() => seenOnA(ben.user.id) && seenOnA(cara.user.id),
			10_000,
			'Ana on A to see Ben and Cara',
		);

		// Ben leaves (a state of null, as the app does for a room it stops showing); Cara's connection closes.
		b.provider.awareness?.setLocalState(null);
		await waitFor(() => !seenOnA(ben.user.id), 5_000, 'Ben gone from presence on A');
		c.destroy();
		await waitFor(() => !seenOnA(cara.user.id), 5_000, 'Cara gone from presence on A');
		expect(seenOnA(ben.user.id) || seenOnA(cara.user.id)).toBe(false);
	});

	it('keeps the presence of a device that came back on the other node when its old socket goes', async () => {
		const { room, ana, ben } = await groupRoom('ana', 'ben');
		const a = open(0, room.id, ana);
		await a.synced();
		const bens = () =>
			[...(a.provider.awareness?.getStates().values() ?? [])].filter((s) => s.user?.id === ben.user.id);
		// Ben's device on node A loses its network; the server there holds the socket (until the 30-s timeout)
		// while the device comes back through node B and says its state again under the same client id.
		const clientId = 4_343_434;
		const say = (raw: RawClient, clock: number, typing: boolean) =>
			raw.sayAwareness(clientId, clock, { user: { color: '#123456' }, typing });
		const old = await RawClient.open(cluster.ws(0), `room:${room.id}`, ben.accessToken);
		const again = await RawClient.open(cluster.ws(1), `room:${room.id}`, ben.accessToken);
		try {
			await old.authenticated;
			say(old, 1, false);
			await waitFor(() => bens().length === 1, 10_000, 'Ana to see Ben');
			await again.authenticated;
			say(again, 2, true);
			await waitFor(() => bens()[0]?.typing === true, 10_000, 'Ana to see Ben typing through node B');
			// The old socket on A goes at last: Ben's device is on B, so he stays.
			old.close();
			await old.ended;
			await new Promise((resolve) => setTimeout(resolve, 1_000));
			expect(bens().map((s) => s.typing)).toEqual([true]);
		} finally {
			old.close();
			again.close();
		}
	});

	// Last in this file: it kills node B.
	it('drops a user whose node died from presence on the other node within the awareness timeout', async () => {
		const { room, ana, ben } = await groupRoom('ana', 'ben');
		const a = open(0, room.id, ana);
		const b = open(1, room.id, ben);
		await Promise.all([a.synced(), b.synced()]);
		b.provider.setAwarenessField('typing', false);
		const seesBen = () =>
			[...(a.provider.awareness?.getStates().values() ?? [])].some((s) => s.user?.id === ben.user.id);
		await waitFor(seesBen, 10_000, 'Ana on A to see Ben on B online');

		await cluster.kill(1);
		const killedAt = Date.now();
		// y-protocols drops a state that was not renewed for 30 s; clients renew every 15 s.
		await waitFor(() => !seesBen(), 45_000, 'Ben to leave the presence Ana sees');
		console.log(`presence: Ben's node was killed; Ana stopped seeing him ${Date.now() - killedAt} ms later`);
	}, 75_000);
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareEvents } from '../../src/lib/protocol/events.ts';
import {
	OPEN_ROOM_ACTIVITY_PROTOCOL,
	PROTOCOL_PARAMETER,
	PROTOCOL_VERSION,
} from '../../src/lib/protocol/version.ts';
import { openChannel, type ChannelClient } from '../helpers/channel.ts';
import { canRunCluster, startCluster, type Cluster } from '../helpers/cluster.ts';
import { connect, waitFor, type TestClient } from '../helpers/collab.ts';
import { PushReceiver } from '../helpers/push-receiver.ts';
import { Api } from '../helpers/server.ts';

type User = Awaited<ReturnType<Api['register']>>;

describe.skipIf(!canRunCluster)('the user channel, on two nodes', () => {
	let cluster: Cluster;
	let api: Api;
	let apiB: Api;
	let receiver: PushReceiver;
	const clients: (TestClient | ChannelClient)[] = [];

	beforeAll(async () => {
		[cluster, receiver] = await Promise.all([startCluster(2), PushReceiver.start()]);
		api = cluster.api;
		apiB = new Api(cluster.urls[1] as string);
	});

	afterAll(async () => {
		for (const c of clients) c.destroy();
		await cluster?.close();
		await receiver?.close();
	});

	const channel = (node: number, user: User, protocol: number | null = PROTOCOL_VERSION) => {
		const client = openChannel(cluster.ws(node), user.user.id, user.accessToken, protocol);
		clients.push(client);
		return client;
	};
	const room = (node: number, roomId: string, user: User) => {
		const client = connect(cluster.ws(node), roomId, user.accessToken, user.user.id);
		clients.push(client);
		return client;
	};
	const stateOf = (c: ChannelClient) =>
		waitFor(() => c.received.some((m) => m.type === 'state'), 10_000, 'the state');

	it('starts with the whole state and the protocol version, and shows a new 1:1 room on the other node within 1 s', async () => {
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const group = await api.createGroup(ben.accessToken, [], 'Ben alone');
		const b = channel(1, ben);
		await stateOf(b);
		const first = b.received[0];
		expect(first).toMatchObject({ type: 'state', protocolVersion: PROTOCOL_VERSION });
		expect(b.rooms().map((r) => r.id)).toEqual([group.id]);
		expect(b.room(group.id)).toMatchObject({ role: 'owner', unread: 0, mentions: 0, notify: 'mentions' });

		const startedAt = performance.now();
		const direct = await api.post(
			'/api/rooms',
			{ isGroup: false, memberIds: [ben.user.id] },
			ana.accessToken,
		);
		expect(direct.status).toBe(201);
		await waitFor(() => b.room(direct.body.id) !== undefined, 5_000, 'the new room on B');
		const ms = performance.now() - startedAt;
		console.log(`a room started on node A reached Ben's channel on node B in ${ms.toFixed(0)} ms`);
		expect(ms).toBeLessThan(1_000);
		expect(b.rooms()[0]?.id).toBe(direct.body.id);
		expect(b.room(direct.body.id)).toMatchObject({ isGroup: false, notify: 'all', role: 'owner' });
	});

	// Clients of this version hear `room-activity`; bots that say no version, and older clients, the whole `room`.
	it.each([
		['this version', PROTOCOL_VERSION, 'room-activity'],
		['no version (a bot)', null, 'room'],
		['version 4', 4, 'room'],
	] as const)(
		'moves a room with a new message to the top, counts unread and mentions, and resets them on read: %s',
		async (_, protocol, type) => {
			const ana = await api.register('ana');
			const ben = await api.register('ben');
			const quiet = await api.createGroup(ana.accessToken, [ben.user.id], 'Quiet');
			const busy = await api.createGroup(ana.accessToken, [ben.user.id], 'Busy');
			const b = channel(1, ben, protocol);
			await stateOf(b);
			expect(b.rooms().map((r) => r.id)).toEqual([busy.id, quiet.id]);

			const a = room(0, quiet.id, ana);
			a.send('plain news');
			a.send(`hey @${ben.user.name}, look`);
			await a.synced();
			await waitFor(() => b.room(quiet.id)?.unread === 2, 5_000, 'two unread');
			expect(b.rooms()[0]?.id).toBe(quiet.id);
			expect(b.room(quiet.id)).toMatchObject({ unread: 2, mentions: 1 });
			expect(b.room(quiet.id)?.lastMessage?.content).toBe(`hey @${ben.user.name}, look`);
			// Groups tell mentions only, by default.
			await waitFor(() => b.notifications().length === 1, 5_000, 'one notification');
			expect(b.notifications()[0]).toMatchObject({
				roomId: quiet.id,
				mention: true,
				senderName: ana.user.name,
			});

			// On the other node: the read reaches the channel through Redis, position and all.
			const reader = room(0, quiet.id, ben);
			await reader.synced();
			// Display order: two messages of one transaction may share a millisecond; the id breaks the tie.
			const newest = reader.messages().sort(compareEvents).at(-1)!;
			reader.read({ at: newest.createdAt, clientMsgId: newest.clientMsgId });
			await waitFor(() => b.room(quiet.id)?.unread === 0, 5_000, 'read on another device');
			expect(b.room(quiet.id)?.mentions).toBe(0);
			// Every change after the state was said one way: the short one to clients that know it.
			const changes = b.received.filter((m) => m.type === 'room' || m.type === 'room-activity');
			expect(changes.length).toBeGreaterThanOrEqual(2);
			expect(new Set(changes.map((m) => m.type))).toEqual(new Set([type]));
			// What was left out of the short form is as the state said it.
			expect(b.room(quiet.id)).toMatchObject({ name: 'Quiet', isGroup: true, role: 'member' });
			expect(
				b
					.room(quiet.id)
					?.members.map((m) => m.id)
					.sort(),
			).toEqual([ana.user.id, ben.user.id].sort());
		},
	);

	// Protocol 6: a device with the room's document open on its channel's socket counts new messages itself.
	it('sends no room-activity after a message to a device of protocol 6 that has the room open beside its channel', async () => {
		const ana = await api.register('ana');
		const [ben, cara, dan] = (await Promise.all(
			['ben', 'cara', 'dan'].map((name) => api.register(name)),
		)) as [User, User, User];
		const group = await api.createGroup(
			ana.accessToken,
			[ben, cara, dan].map((u) => u.user.id),
			'Open beside',
		);
		// On node B: Ben and Dan with the room and the channel on one socket (Dan's app is of version 5), Cara
		// with the channel alone.
		const device = (user: User, protocol: number) => {
			const r = connect(
				`${cluster.ws(1)}?${PROTOCOL_PARAMETER}=${protocol}`,
				group.id,
				user.accessToken,
				user.user.id,
			);
			clients.push(r);
			const c = openChannel(cluster.ws(1), user.user.id, user.accessToken, protocol, r.socket);
			clients.push(c);
			return { r, c };
		};
		const b = device(ben, OPEN_ROOM_ACTIVITY_PROTOCOL);
		const d = device(dan, OPEN_ROOM_ACTIVITY_PROTOCOL - 1);
		const c = channel(1, cara);
		await Promise.all([stateOf(b.c), stateOf(d.c), stateOf(c), b.r.synced(), d.r.synced()]);

		// Ana writes on node A: the activity reaches node B through Redis.
		const a = room(0, group.id, ana);
		a.send('plain news');
		// Stored one after the other: the newest in display order is the newest stored (the list's `lastMessage`).
		await a.synced();
		const mention = a.send(`hey @${ben.user.name}, look`);
		await a.synced();
		for (const client of [c, d.c])
			await waitFor(
				() => client.room(group.id)?.unread === 2,
				5_000,
				'two unread where the room is not open',
			);
		// Ben's mention still notifies him; his device has both messages, and was told no counts.
		await waitFor(() => b.c.notifications().length === 1, 5_000, 'the mention');
		expect(b.r.messages().map((m) => m.clientMsgId)).toContain(mention.clientMsgId);
		expect(b.c.received.filter((m) => m.type === 'room-activity' || m.type === 'room')).toEqual([]);

		// Reads: Ben's is said in the room (`reads`), where his device counts from, and not on his channel; Dan's
		// app, of version 5, hears nothing is left unread there, and the newest message as it was written.
		const newest = b.r.messages().sort(compareEvents).at(-1)!;
		for (const reader of [b.r, d.r]) reader.read({ at: newest.createdAt, clientMsgId: newest.clientMsgId });
		await waitFor(() => b.r.reads.get(ben.user.id)?.clientMsgId === newest.clientMsgId, 5_000, 'Ben’s read');
		await waitFor(() => d.c.room(group.id)?.unread === 0, 5_000, 'Dan’s read');
		expect(d.c.room(group.id)?.lastMessage).toMatchObject({
			clientMsgId: newest.clientMsgId,
			senderId: ana.user.id,
			content: newest.content,
		});
		expect(b.c.received.filter((m) => m.type === 'room-activity' || m.type === 'room')).toEqual([]);
	});

	it('tells who is online: a device connected on any node, until the last one leaves', async () => {
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const stranger = await api.register('cara');
		const group = await api.createGroup(ana.accessToken, [ben.user.id], 'Presence');
		const b = channel(1, ben);
		const c = channel(1, stranger);
		await Promise.all([stateOf(b), stateOf(c)]);
		const anaIn = (client: ChannelClient) =>
			client.room(group.id)?.members.find((m) => m.id === ana.user.id)?.online;
		expect(anaIn(b)).toBe(false);
		const presenceOf = (client: ChannelClient, userId: string) =>
			client.received.filter((m) => m.type === 'presence' && m.userId === userId);

		// Ana opens the app on node A, on two devices: Ben, on node B, hears she is online once.
		const phone = channel(0, ana);
		const laptop = channel(0, ana);
		await Promise.all([stateOf(phone), stateOf(laptop)]);
		await waitFor(() => presenceOf(b, ana.user.id).length === 1, 5_000, 'Ana online at Ben');
		expect(presenceOf(b, ana.user.id)[0]).toMatchObject({ online: true });
		// A state sent now says so too.
		const again = channel(1, ben);
		await stateOf(again);
		expect(anaIn(again)).toBe(true);

		// One device leaves: she is still online. The last one leaves: Ben hears she is offline.
		phone.destroy();
		await new Promise((resolve) => setTimeout(resolve, 300));
		expect(presenceOf(b, ana.user.id)).toHaveLength(1);
		laptop.destroy();
		// (after the grace for a reload: server/collab/devices.ts)
		await waitFor(() => presenceOf(b, ana.user.id).length === 2, 10_000, 'Ana offline at Ben');
		expect(presenceOf(b, ana.user.id)[1]).toMatchObject({ online: false });
		// Someone who shares no room with her hears nothing about her.
		expect(presenceOf(c, ana.user.id)).toEqual([]);
	});

	it('notifies by each room’s level, stored on the server for every device', async () => {
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const direct = (
			await api.post('/api/rooms', { isGroup: false, memberIds: [ben.user.id] }, ana.accessToken)
		).body as { id: string };
		const phone = channel(0, ben);
		const laptop = channel(1, ben);
		await Promise.all([stateOf(phone), stateOf(laptop)]);
		const a = room(0, direct.id, ana);

		a.send('a direct message');
		await waitFor(
			() => laptop.notifications().length === 1 && phone.notifications().length === 1,
			5_000,
			'both',
		);

		const muted = await apiB.request('PUT', `/api/rooms/${direct.id}/notifications`, {
			body: { level: 'none' },
			token: ben.accessToken,
		});
		expect(muted.status).toBe(204);
		await waitFor(() => phone.room(direct.id)?.notify === 'none', 5_000, 'the level on the other device');
		a.send(`muted, even @${ben.user.name}`);
		await a.synced();

		await api.request('PUT', `/api/rooms/${direct.id}/notifications`, {
			body: { level: 'mentions' },
			token: ben.accessToken,
		});
		await waitFor(
			() => laptop.room(direct.id)?.notify === 'mentions' && phone.room(direct.id)?.notify === 'mentions',
			5_000,
			'mentions only on both devices',
		);
		a.send('not a mention');
		a.send(`but this is, @${ben.user.name}.`);
		await a.synced();
		await waitFor(
			// Counts are re-read from the database, so they can show a message before its notify arrives.
			() =>
				laptop.room(direct.id)?.unread === 4 &&
				laptop.notifications().length === 2 &&
				phone.notifications().length === 2,
			5_000,
			'four unread, and the mention on both devices',
		);
		expect(laptop.notifications().map((n) => n.content)).toEqual([
			'a direct message',
			`but this is, @${ben.user.name}.`,
		]);
		expect(phone.notifications().length).toBe(2);

		const bad = await api.request('PUT', `/api/rooms/${direct.id}/notifications`, {
			body: { level: 'loud' },
			token: ben.accessToken,
		});
		expect(bad.status).toBe(400);
		expect(bad.body.error.message).toMatch(/level/);
	});

	it('tells a member added to a group, removed from it, or leaving it; and the others see the members change', async () => {
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const cleo = await api.register('cleo');
		const group = await api.createGroup(ana.accessToken, [ben.user.id], 'Team');
		const c = channel(1, cleo);
		const b = channel(0, ben);
		await Promise.all([stateOf(c), stateOf(b)]);

		expect(
			(await api.post(`/api/rooms/${group.id}/members`, { userId: cleo.user.id }, ana.accessToken)).status,
		).toBe(201);
		await waitFor(() => c.room(group.id) !== undefined, 5_000, 'Cleo to see the group');
		await waitFor(() => b.room(group.id)?.members.length === 3, 5_000, 'Ben to see Cleo join');

		await api.delete(`/api/rooms/${group.id}/members/${cleo.user.id}`, ana.accessToken);
		await waitFor(() => c.room(group.id) === undefined, 5_000, 'the removal');
		expect(c.received.at(-1)).toEqual({ type: 'room-removed', roomId: group.id, reason: 'removed' });

		await apiB.delete(`/api/rooms/${group.id}/members/${ben.user.id}`, ben.accessToken);
		await waitFor(() => b.room(group.id) === undefined, 5_000, 'Ben leaving');
		expect(b.received.at(-1)).toEqual({ type: 'room-removed', roomId: group.id, reason: 'left' });
	});

	it('gives a channel that was away the state, not a replay', async () => {
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const b = channel(1, ben);
		await stateOf(b);
		b.socket.disconnect();
		const group = await api.createGroup(ana.accessToken, [ben.user.id], 'While away');
		const a = room(0, group.id, ana);
		a.send('you missed this');
		await a.synced();
		await b.socket.connect();
		await waitFor(() => b.room(group.id)?.unread === 1, 10_000, 'the state after reconnecting');
		expect(b.received.filter((m) => m.type === 'state').length).toBe(2);
	});

	it('opens to its owner only, and read-only', async () => {
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const spy = openChannel(cluster.ws(0), ben.user.id, ana.accessToken);
		clients.push(spy);
		expect(await spy.authFailure).toBe('unknown-document');
		expect(spy.received).toEqual([]);

		const own = channel(0, ana);
		await stateOf(own);
		own.provider.document.getMap('x').set('forged', 1);
		await new Promise((resolve) => setTimeout(resolve, 300));
		const other = channel(1, ana);
		await stateOf(other);
		expect(other.provider.document.getMap('x').size).toBe(0);
	});

	it('sends one Web Push for a mention while no device is connected, and none while one is', async () => {
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const group = await api.createGroup(ana.accessToken, [ben.user.id], 'Push');
		const subscription = receiver.subscription();
		expect((await api.post('/api/push/subscriptions', subscription, ben.accessToken)).status).toBe(201);

		const a = room(0, group.id, ana);
		const mention = a.send(`@${ben.user.name} are you there?`);
		a.send('no mention: no push in a group');
		await a.synced();
		await receiver.waitFor(subscription.endpoint, 1);
		expect(receiver.payloads(subscription.endpoint)).toEqual([
			{
				type: 'message',
				roomId: group.id,
				roomName: 'Push',
				isGroup: true,
				senderName: ana.user.name,
				mention: true,
				clientMsgId: mention.clientMsgId,
				url: `/rooms/${group.id}`,
			},
		]);

		// Ben opens the app on node B: the mention goes to the app, not to the push service.
		const b = channel(1, ben);
		await stateOf(b);
		a.send(`@${ben.user.name} now you are`);
		await a.synced();
		await waitFor(() => b.notifications().length === 1, 5_000, 'the in-app notification');
		await new Promise((resolve) => setTimeout(resolve, 500));
		expect(receiver.payloads(subscription.endpoint).length).toBe(1);
	});
});

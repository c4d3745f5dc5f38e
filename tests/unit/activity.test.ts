import { describe, expect, it } from 'vitest';
import { Activity, type PushSender } from '../../server/collab/activity.ts';
import type { Devices } from '../../server/collab/devices.ts';
import type { Db } from '../../server/db/index.ts';
import { LocalBus, type ClusterEvent } from '../../server/events/bus.ts';
import { createLogger } from '../../server/log.ts';
import type { PushPayload } from '#protocol/user-channel.ts';

const roomId = '00000000-0000-4000-8000-000000000001';
const members = [
	{ id: 'ana', name: 'ana', notify: 'all' },
	{ id: 'ben', name: 'ben', notify: 'all' },
	{ id: 'cleo', name: 'cleo', notify: 'mentions' },
	{ id: 'dan', name: 'dan', notify: 'mentions' },
	{ id: 'eve', name: 'eve', notify: 'none' },
	{ id: 'fay', name: 'fay', notify: 'all' },
];

/** An Activity over a room of `members` (the database answers its audience query), with fakes for the rest. */
function setUp(online: string[]) {
	const db = {
		kind: 'postgres',
		query: async () => ({
			rows: members.map((m) => ({ is_group: true, room_name: 'Team', ...m })),
			rowCount: members.length,
		}),
	} as unknown as Db;
	const log = createLogger('silent');
	const bus = new LocalBus(log);
	const published: ClusterEvent[] = [];
	bus.subscribe((event) => void published.push(event));
	const asked: string[][] = [];
	const devices = {
		onlineOf: async (ids: string[]) => {
			asked.push(ids);
			return new Set(ids.filter((id) => online.includes(id)));
		},
		anyConnected: async (id: string) => {
			asked.push([id]);
			return online.includes(id);
		},
	} as unknown as Devices;
	const pushed: [string, PushPayload][] = [];
	let sent!: () => void;
	const done = new Promise<void>((resolve) => (sent = resolve));
	const push: PushSender = {
		sendToUser: async (userId, payload) => {
			pushed.push([userId, payload]);
			sent();
		},
	};
	const activity = new Activity({ db, log, bus, devices, push });
	return { activity, published, asked, pushed, done };
}

const message = (clientMsgId: string, content: string) => ({
	kind: 'message' as const,
	clientMsgId,
	senderId: 'ana',
	content,
	createdAt: '2026-12-02T10:00:00.000Z',
});

describe('Activity', () => {
	it('asks once who is online for all of an update’s recipients, and pushes to those offline only', async () => {
		const { activity, published, asked, pushed, done } = setUp(['ben']);
		activity.accepted({
			roomId,
			writer: { id: 'ana', name: 'ana' },
			events: [message('m1', 'hello @cleo'), message('m2', 'lunch?')],
		});
		await done;
		await new Promise((resolve) => setTimeout(resolve, 10));
		// Ben and Fay hear of everything, Cleo of her mention, Dan and Eve of nothing; Ana wrote it.
		expect(asked).toEqual([['ben', 'cleo', 'fay']]);
		expect(pushed.map(([user, p]) => `${user} ${p.type === 'message' ? p.clientMsgId : ''}`).sort()).toEqual([
			'cleo m1',
			'fay m1',
			'fay m2',
		]);
		expect(published).toMatchObject([
			{
				type: 'activity',
				roomId,
				messages: [
					{ clientMsgId: 'm1', mentions: ['cleo'] },
					{ clientMsgId: 'm2', mentions: [] },
				],
				others: 0,
			},
		]);
	});

	it('asks nobody when nobody is due a push', async () => {
		const { activity, published, asked, pushed } = setUp([]);
		activity.accepted({
			roomId,
			writer: { id: 'ana', name: 'ana' },
			events: [
				{
					kind: 'reaction',
					clientMsgId: 'r1',
					senderId: 'ana',
					targetId: 'm1',
					emoji: '👍',
					createdAt: '2026-12-02T10:00:00.000Z',
				},
			],
		});
		await new Promise((resolve) => setTimeout(resolve, 10));
		expect(published).toMatchObject([{ type: 'activity', messages: [], others: 1 }]);
		expect(asked).toEqual([]);
		expect(pushed).toEqual([]);
	});

	it('keeps the audiences of the rooms heard from last, up to its members, and forgets a room that changed', async () => {
		const queried: string[] = [];
		const db = {
			kind: 'postgres',
			query: async (_sql: string, params: unknown[]) => {
				queried.push(params[0] as string);
				return { rows: members.map((m) => ({ is_group: true, room_name: 'Team', ...m })), rowCount: 6 };
			},
		} as unknown as Db;
		const log = createLogger('silent');
		const bus = new LocalBus(log);
		const devices = { onlineOf: async () => new Set<string>() } as unknown as Devices;
		// Room of six members each: the limit holds two rooms.
		const activity = new Activity({ db, log, bus, devices, audienceCacheMembers: 12 });
		const published: string[] = [];
		bus.subscribe((event) => void (event.type === 'activity' && published.push(event.roomId)));
		const write = async (room: string) => {
			const before = published.length;
			activity.accepted({ roomId: room, writer: { id: 'ana', name: 'ana' }, events: [message(room, 'hi')] });
			await expect.poll(() => published.length).toBe(before + 1);
		};
		const [a, b, c] = ['a', 'b', 'c'].map((x) => `00000000-0000-4000-8000-00000000000${x}`) as [
			string,
			string,
			string,
		];
		for (const room of [a, b, a, c, a, b]) await write(room);
		// a and b are cached; c pushes out b (heard from longer ago than a), which is asked again.
		expect(queried).toEqual([a, b, c, b]);
		const removal = { type: 'membership', roomId: a, userId: roomId, role: null, by: null } as const;
		await bus.publish(removal);
		await write(a);
		expect(queried).toEqual([a, b, c, b, a]);
	});
});

import { describe, expect, it } from 'vitest';
import type { RoomSummary } from '../../src/lib/client/schemas.ts';
import {
	countsOf,
	summaryOf,
	withActivity,
	withNewest,
	withPresence,
	type StoreCounts,
} from '../../src/lib/client/room-list.ts';
import type { ChatMessage } from '../../src/lib/sync/model.ts';
import { readUserChannelMessage } from '../../src/lib/protocol/user-channel.ts';

const ana = '00000000-0000-4000-8000-00000000000a';
const ben = '00000000-0000-4000-8000-00000000000b';

function room(id: string, online: Record<string, boolean>): RoomSummary {
	return {
		id,
		name: 'Room',
		topic: null,
		isGroup: true,
		members: Object.entries(online).map(([userId, on]) => ({
			id: userId,
			name: userId.slice(-1),
			role: 'member' as const,
			lastSeen: null,
			online: on,
		})),
		role: 'member',
		lastMessage: null,
		activityAt: new Date(0).toISOString(),
		unread: 0,
		mentions: 0,
		notify: 'all',
	};
}

describe('presence in the room list', () => {
	it('sets one person online in every room they are in, and leaves the other rooms as they were', () => {
		const shared = room('00000000-0000-4000-8000-000000000001', { [ana]: false, [ben]: false });
		const other = room('00000000-0000-4000-8000-000000000002', { [ben]: false });
		const [a, b] = withPresence([shared, other], ana, true);
		expect(a!.members.find((m) => m.id === ana)?.online).toBe(true);
		expect(a!.members.find((m) => m.id === ben)?.online).toBe(false);
		expect(b).toBe(other);
		expect(withPresence([a!], ana, true)[0]).toBe(a);
	});

	it('keeps what the channel said when the HTTP API, which does not say who is online, sends the room', () => {
		const known = room('00000000-0000-4000-8000-000000000003', { [ana]: true, [ben]: false });
		const fromApi = {
			...known,
			members: known.members.map((m) => ({ id: m.id, name: m.name, role: m.role, lastSeen: m.lastSeen })),
		};
		const merged = summaryOf(fromApi, known, ben);
		expect(merged.members.map((m) => m.online)).toEqual([true, false]);
	});
});

describe('room activity in the room list', () => {
	it('takes the newest message, the time and the counts of a `room-activity`, and keeps the rest', () => {
		const before = room('00000000-0000-4000-8000-000000000001', { [ana]: true, [ben]: false });
		const payload = JSON.stringify({
			type: 'room-activity',
			roomId: before.id,
			lastMessage: {
				clientMsgId: '00000000-0000-4000-8000-0000000000f1',
				senderId: ben,
				senderName: 'ben',
				content: 'hi',
				createdAt: '2026-12-02T10:00:00.000Z',
			},
			activityAt: '2026-12-02T10:00:00.010Z',
			unread: 3,
			mentions: 1,
		});
		const message = readUserChannelMessage(payload);
		if (message?.type !== 'room-activity') throw new Error(`not read as room-activity: ${payload}`);
		const change = message;
		const after = withActivity([before], change);
		expect(after).toEqual({
			...before,
			lastMessage: change.lastMessage,
			activityAt: change.activityAt,
			unread: 3,
			mentions: 1,
		});
		expect(before.unread).toBe(0);
		expect(withActivity([], change)).toBeUndefined();
		// A malformed one is not a message of this version: ignored, not applied.
		expect(readUserChannelMessage(JSON.stringify({ ...JSON.parse(payload), unread: -1 }))).toBeNull();
	});
});

describe('a room open on this device (protocol 6)', () => {
	const id = '00000000-0000-4000-8000-000000000003';
	const message = (over: Partial<ChatMessage> = {}): ChatMessage => ({
		clientMsgId: '00000000-0000-4000-8000-0000000000f1',
		senderId: ben,
		content: 'hello @a',
		createdAt: '2026-12-03T10:00:00.000Z',
		at: Date.parse('2026-12-03T10:00:00.000Z'),
		own: false,
		status: 'synced',
		reactions: [],
		...over,
	});
	const base = { ...room(id, { [ana]: true, [ben]: true }), activityAt: '2026-12-03T09:00:00.000Z' };
	const keep = (r: RoomSummary) => ({ unread: r.unread, mentions: r.mentions });

	it('takes a newer message of the document as the preview and moves the room up by its time', () => {
		const next = withNewest([base], id, message(), (r) => ({ unread: r.unread + 1, mentions: 1 }));
		expect(next).toMatchObject({ unread: 1, mentions: 1 });
		expect(next?.lastMessage).toEqual({
			clientMsgId: message().clientMsgId,
			senderId: ben,
			senderName: 'b',
			content: 'hello @a',
			createdAt: message().createdAt,
		});
		expect(next?.activityAt).toBe(message().createdAt);
		// Said already: nothing changes. Deleted: the preview says so, the time stays.
		expect(withNewest([next!], id, message(), keep)).toBeUndefined();
		const deleted = withNewest([next!], id, message({ deleted: { by: ben, at: message().createdAt } }), keep);
		expect(deleted?.lastMessage?.content).toBeNull();
		expect(deleted?.activityAt).toBe(next?.activityAt);
		// Someone no longer in the room: no name rather than the previous sender's.
		const later = '2026-12-03T10:01:00.000Z';
		const gone = message({
			clientMsgId: '00000000-0000-4000-8000-0000000000f2',
			senderId: '00000000-0000-4000-8000-00000000000c',
			createdAt: later,
			at: Date.parse(later),
		});
		expect(withNewest([next!], id, gone, keep)?.lastMessage?.senderName).toBeNull();
	});

	it('never goes back: an older message, a failed one, a room not in the list', () => {
		const newer = withNewest([base], id, message(), keep)!;
		const older = message({
			clientMsgId: '00000000-0000-4000-8000-0000000000f0',
			createdAt: '2026-12-03T08:00:00.000Z',
			at: Date.parse('2026-12-03T08:00:00.000Z'),
		});
		expect(withNewest([newer], id, older, keep)).toBeUndefined();
		// An older message as the newest (a list that had none): the room keeps the server's later time.
		expect(withNewest([base], id, older, keep)?.activityAt).toBe(base.activityAt);
		expect(withNewest([base], id, message({ status: 'failed' }), keep)).toBeUndefined();
		expect(withNewest([], id, message(), keep)).toBeUndefined();
	});

	it('counts from the open store once it is synced and holds the read position, else from the server', () => {
		const server = { ...base, unread: 4, mentions: 2 };
		const store = (
			over: Partial<StoreCounts> = {},
			reads: Partial<StoreCounts['reads']> = {},
		): StoreCounts => ({
			localReady: true,
			metaReady: true,
			synced: true,
			...over,
			reads: { unreadCount: 7, mentionCount: 1, known: true, covers: true, ...reads },
		});
		expect(countsOf(server, undefined, false)).toEqual({ unread: 4, mentions: 2 });
		expect(countsOf(server, store(), false)).toEqual({ unread: 7, mentions: 1 });
		// Not synced (offline: nothing arrives), read position not known yet, or not read from the device yet.
		expect(countsOf(server, store({ synced: false }), false)).toEqual({ unread: 4, mentions: 2 });
		expect(countsOf(server, store({}, { known: false }), false)).toEqual({ unread: 4, mentions: 2 });
		expect(countsOf(server, store({ metaReady: false }), true)).toEqual({ unread: 4, mentions: 2 });
		// The room on screen: the device's count, synced or not.
		expect(countsOf(server, store({ synced: false }), true)).toEqual({ unread: 7, mentions: 1 });
		// More unread than the device holds: the server's earlier count is the floor.
		expect(countsOf(server, store({}, { covers: false }), false)).toEqual({ unread: 7, mentions: 2 });
	});
});

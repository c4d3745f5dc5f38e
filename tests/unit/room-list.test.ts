import { describe, expect, it } from 'vitest';
import type { RoomSummary } from '../../src/lib/client/schemas.ts';
import { summaryOf, withActivity, withPresence } from '../../src/lib/client/room-list.ts';
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

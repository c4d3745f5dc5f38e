import { describe, expect, it } from 'vitest';
import { clusterEvent } from '../../server/events/bus.ts';

const roomId = '00000000-0000-4000-8000-000000000001';
const userId = '00000000-0000-4000-8000-00000000000a';

describe('cluster events between nodes of two versions', () => {
	it('takes an event with a field this version does not know, without the field', () => {
		const parsed = clusterEvent.safeParse({ type: 'read', roomId, userId, seenOn: 'a newer node' });
		expect(parsed.success && parsed.data).toEqual({ type: 'read', roomId, userId });
	});

	it('still refuses a known field that is wrong, and a type it does not know', () => {
		expect(clusterEvent.safeParse({ type: 'read', roomId, userId: 'not-a-uuid' }).success).toBe(false);
		expect(clusterEvent.safeParse({ type: 'read', roomId, userId, clientMsgId: 7 }).success).toBe(false);
		expect(clusterEvent.safeParse({ type: 'typing', roomId, userId }).success).toBe(false);
	});
});

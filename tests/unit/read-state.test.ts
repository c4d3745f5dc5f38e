import { describe, expect, it } from 'vitest';
import { readState } from '../../src/lib/client/store.ts';
import { compareOrder } from '../../src/lib/protocol/events.ts';
import { placeOf, positionOf } from '../../src/lib/protocol/stateless.ts';

const roomId = '0b6d7a9e-2f4c-4e58-9a1b-7c3d2e1f0a9b';
const clientMsgId = '5f0c8d1e-3a2b-4c6d-8e9f-0a1b2c3d4e5f';

describe('read positions', () => {
	it('reads a read state the device stored in the shape before protocol 3 as a place', () => {
		const old = { roomId, lastReadAt: 1_764_000_000_000, lastReadId: clientMsgId };
		expect(readState.parse(old)).toEqual({ roomId, at: 1_764_000_000_000, clientMsgId });
		expect(readState.parse({ roomId, at: 5, clientMsgId })).toEqual({ roomId, at: 5, clientMsgId });
		expect(readState.safeParse({ roomId, at: 'soon', clientMsgId }).success).toBe(false);
	});

	it('converts between the wire position and the place a client compares, losing nothing', () => {
		const position = { at: '2026-11-30T08:00:00.123Z', clientMsgId };
		expect(positionOf(placeOf(position))).toEqual(position);
		const later = placeOf({ at: '2026-11-30T08:00:00.124Z', clientMsgId: roomId });
		expect(compareOrder(placeOf(position), later)).toBeLessThan(0);
	});
});

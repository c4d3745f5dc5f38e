import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { foldEvents, type RoomEvent } from '../../src/lib/protocol/events.ts';

const ana = randomUUID();
const ben = randomUUID();
const cara = randomUUID();
let clock = Date.parse('2026-11-01T10:00:00Z');
const at = () => new Date((clock += 1_000)).toISOString();
const base = (senderId: string) => ({ clientMsgId: randomUUID(), senderId, createdAt: at() });

function shuffled<T>(items: T[], seed: number): T[] {
	const out = [...items];
	for (let i = out.length - 1; i > 0; i--) {
		seed = (seed * 1103515245 + 12345) % 2 ** 31;
		const j = seed % (i + 1);
		[out[i], out[j]] = [out[j] as T, out[i] as T];
	}
	return out;
}

describe('folding edits, deletes and reactions into messages', () => {
	const m: RoomEvent = { kind: 'message', ...base(ana), content: 'first' };
	const other: RoomEvent = { kind: 'message', ...base(ben), content: 'second' };
	const events: RoomEvent[] = [
		m,
		other,
		{ kind: 'edit', ...base(ana), targetId: m.clientMsgId, content: 'first, edited' },
		{ kind: 'edit', ...base(ben), targetId: m.clientMsgId, content: 'not ben’s to edit' },
		{ kind: 'edit', ...base(ana), targetId: m.clientMsgId, content: 'first, edited twice' },
		{ kind: 'reaction', ...base(ben), targetId: m.clientMsgId, emoji: '👍' },
		{ kind: 'reaction', ...base(ben), targetId: m.clientMsgId, emoji: '👍' },
		{ kind: 'reaction', ...base(cara), targetId: m.clientMsgId, emoji: '👍' },
		{ kind: 'reaction', ...base(cara), targetId: m.clientMsgId, emoji: '🎉' },
		{ kind: 'unreaction', ...base(cara), targetId: m.clientMsgId, emoji: '🎉' },
		{ kind: 'reaction', ...base(ana), targetId: other.clientMsgId, emoji: '❤️' },
		{ kind: 'delete', ...base(ben), targetId: other.clientMsgId },
		{ kind: 'reaction', ...base(ana), targetId: randomUUID(), emoji: '👍' },
	];

	it('shows the latest own edit, counts each reaction once per user, and empties deleted messages', () => {
		const folded = foldEvents(events);
		expect([...folded.keys()]).toEqual([m.clientMsgId, other.clientMsgId]);
		const first = folded.get(m.clientMsgId);
		expect(first?.content).toBe('first, edited twice');
		expect(first?.editedAt).toBe(events[4]?.createdAt);
		expect(Object.fromEntries(first?.reactions ?? [])).toEqual({ '👍': [ben, cara] });
		const second = folded.get(other.clientMsgId);
		expect(second?.deleted).toEqual({ by: ben, at: events[11]?.createdAt });
		expect(second?.content).toBe('');
		expect(second?.reactions.size).toBe(0);
	});

	it('gives the same result in any arrival order', () => {
		const expected = foldEvents(events);
		for (let seed = 1; seed <= 20; seed++) expect(foldEvents(shuffled(events, seed))).toEqual(expected);
	});
});

import { describe, expect, it } from 'vitest';
import {
	compareOrder,
	foldEvents,
	type MessageEvent,
	type RoomEvent,
} from '../../src/lib/protocol/events.ts';
import {
	failedToChatMessage,
	toChatMessage,
	type ChatMessage,
	type FailedMessage,
} from '../../src/lib/sync/model.ts';
import { MessageView } from '../../src/lib/sync/view.ts';

/*
 * The incremental view (src/lib/sync/view.ts) against the plain definition: fold every event with `foldEvents`,
 * give own messages their state, add refused ones the document lacks, sort. Random changes in random batches
 * (small ones are spliced in, big ones re-sort), compared after every batch.
 */

const users = ['00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000b'] as const;
const me = users[0];
const emojis = ['👍', '🎉', '❤️'];

/** A small deterministic generator (the seed is printed when a case fails). */
function random(seed: number) {
	let state = seed >>> 0 || 1;
	const next = () => {
		state ^= state << 13;
		state ^= state >>> 17;
		state ^= state << 5;
		return (state >>> 0) / 2 ** 32;
	};
	return { next, pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T };
}

function reference(
	events: Map<string, RoomEvent>,
	acked: Set<string>,
	failed: Map<string, FailedMessage>,
): ChatMessage[] {
	const folded = foldEvents(events.values());
	const list: ChatMessage[] = [...folded.values()].map((f) => {
		const m = toChatMessage(f, me);
		if (!m.own) return m;
		const failure = failed.get(m.clientMsgId);
		if (acked.has(m.clientMsgId)) return { ...m, status: 'synced' };
		return failure ? { ...m, status: 'failed', reason: failure.reason } : { ...m, status: 'pending' };
	});
	for (const f of failed.values()) if (!folded.has(f.clientMsgId)) list.push(failedToChatMessage(f, me));
	return list.sort(compareOrder);
}

function runCase(seed: number, steps: number): void {
	const r = random(seed);
	let counter = 0;
	const id = () => `00000000-0000-4000-8000-${String(++counter).padStart(12, '0')}`;
	// Few distinct times, so that ties (broken by id) are common.
	const at = () => new Date(Date.UTC(2026, 10, 30, 9, 0, Math.floor(r.next() * 40))).toISOString();
	const events = new Map<string, RoomEvent>();
	const acked = new Set<string>();
	const failed = new Map<string, FailedMessage>();
	const view = new MessageView(me, (messageId) => {
		if (acked.has(messageId)) return { status: 'synced' };
		const failure = failed.get(messageId);
		return failure ? { status: 'failed', reason: failure.reason } : { status: 'pending' };
	});
	const messages = () => [...events.values()].filter((e): e is MessageEvent => e.kind === 'message');
	const targetId = () => (r.next() < 0.9 && messages().length > 0 ? r.pick(messages()).clientMsgId : id());

	for (let step = 0; step < steps; step++) {
		const batch = r.next() < 0.1 ? 100 : 1 + Math.floor(r.next() * 5);
		for (let i = 0; i < batch; i++) {
			const roll = r.next();
			const base = { clientMsgId: id(), senderId: r.pick(users), createdAt: at() };
			let event: RoomEvent | undefined;
			if (roll < 0.35) event = { kind: 'message', ...base, content: `m${counter}` };
			else if (roll < 0.45) event = { kind: 'edit', ...base, targetId: targetId(), content: `e${counter}` };
			else if (roll < 0.5) event = { kind: 'delete', ...base, targetId: targetId() };
			else if (roll < 0.65)
				event = {
					kind: r.pick(['reaction', 'unreaction'] as const),
					...base,
					targetId: targetId(),
					emoji: r.pick(emojis),
				};
			else if (roll < 0.72 && events.size > 0) {
				const victim = r.pick([...events.keys()]);
				events.delete(victim);
				view.delete(victim);
			} else if (roll < 0.77 && messages().length > 0) {
				// The same key with another value (a replaced entry): same id, maybe another time.
				const old = r.pick(messages());
				event = { ...old, content: `${old.content}'`, createdAt: r.next() < 0.5 ? old.createdAt : at() };
			} else if (roll < 0.87) {
				const own = messages().filter((m) => m.senderId === me);
				if (own.length > 0) {
					const ackId = r.pick(own).clientMsgId;
					acked.add(ackId);
					view.refresh([ackId]);
				}
			} else {
				const own = messages().filter((m) => m.senderId === me);
				const target = own.length > 0 && r.next() < 0.7 ? r.pick(own) : undefined;
				const f: FailedMessage = {
					roomId: '00000000-0000-4000-8000-000000000000',
					clientMsgId: target?.clientMsgId ?? id(),
					content: target?.content ?? `f${counter}`,
					createdAt: target?.createdAt ?? at(),
					reason: `refused ${counter}`,
				};
				failed.set(f.clientMsgId, f);
				view.setFailed([f]);
			}
			if (event) {
				events.set(event.clientMsgId, event);
				view.set(event);
			}
			// The first seeds also read the list after every single change (a read applies what is pending).
			if (seed <= 10)
				expect(view.list, `seed ${seed}, step ${step}, change ${i}`).toEqual(
					reference(events, acked, failed),
				);
		}
		expect(view.list, `seed ${seed}, step ${step}`).toEqual(reference(events, acked, failed));
	}
	view.reset(events.values());
	expect(view.list, `seed ${seed}, after a reset`).toEqual(reference(events, acked, failed));
}

describe('the incremental message view', () => {
	it('shows what folding every event would, after every batch of random changes', () => {
		for (let seed = 1; seed <= 20; seed++) runCase(seed, 40);
	});

	it('returns the same array until something changes', () => {
		const view = new MessageView(me, () => ({ status: 'synced' }));
		const m: RoomEvent = {
			kind: 'message',
			clientMsgId: '00000000-0000-4000-8000-000000000001',
			senderId: users[1],
			content: 'hi',
			createdAt: '2026-11-30T09:00:00.000Z',
		};
		view.set(m);
		const first = view.list;
		expect(view.list).toBe(first);
		view.set(m);
		expect(view.list).toBe(first);
		view.set({
			kind: 'reaction',
			clientMsgId: '00000000-0000-4000-8000-000000000002',
			senderId: me,
			createdAt: m.createdAt,
			targetId: m.clientMsgId,
			emoji: '👍',
		});
		expect(view.list).not.toBe(first);
		expect(view.list[0]?.reactions).toEqual([{ emoji: '👍', userIds: [me] }]);
	});
});

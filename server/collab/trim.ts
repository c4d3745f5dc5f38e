import type * as Y from 'yjs';
import {
	compareEvents,
	roomEvent,
	type MessageEvent,
	type TargetedEvent,
} from '../../src/lib/protocol/events.ts';

/**
 * Which keys to delete from a room's `messages` map so that it keeps its `window` newest messages (display
 * order): the older messages, and every edit, delete or reaction that is older than the oldest message kept or
 * points at a message that is not kept. Everything trimmed is in the Postgres mirror already (it was mirrored
 * when it was accepted), where clients page it in as history. Entries that do not parse are left alone.
 */
export function trimPlan(map: Y.Map<unknown>, window: number): string[] {
	const messages: MessageEvent[] = [];
	const others: TargetedEvent[] = [];
	for (const [key, value] of map) {
		const parsed = roomEvent.safeParse(value);
		if (!parsed.success || parsed.data.clientMsgId !== key) continue;
		if (parsed.data.kind === 'message') messages.push(parsed.data);
		else others.push(parsed.data);
	}
	if (messages.length <= window) return [];
	messages.sort(compareEvents);
	const cut = messages.length - window;
	const oldestKept = messages[cut] as MessageEvent;
	const trimmed = new Set(messages.slice(0, cut).map((m) => m.clientMsgId));
	const doomed = [...trimmed];
	for (const e of others) {
		if (trimmed.has(e.targetId) || !map.has(e.targetId) || compareEvents(e, oldestKept) < 0) {
			doomed.push(e.clientMsgId);
		}
	}
	return doomed;
}

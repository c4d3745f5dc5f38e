import * as Y from 'yjs';
import { compareEvents, roomEvent, type MessageEvent, type TargetedEvent } from '#protocol/events.ts';

/**
 * Which keys to delete from a room's `messages` map so that it keeps its `window` newest messages (display
 * order): the older messages, and every edit, delete or reaction that points at a message that is not kept. Everything trimmed is in the Postgres mirror already (it was mirrored
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
	const trimmed = new Set(messages.slice(0, cut).map((m) => m.clientMsgId));
	const doomed = [...trimmed];
	for (const e of others) {
		// By target only, never by time: an edit or reaction of a message that stays must stay with it, or a
		// device that never pages history back that far would not see it.
		if (trimmed.has(e.targetId) || !map.has(e.targetId)) {
			doomed.push(e.clientMsgId);
		}
	}
	return doomed;
}

/**
 * Turns the tombstones of trimmed entries into runs of Yjs GC structs: in a document about to be encoded as a
 * snapshot, and in a live room right after its trim (between transactions, never inside one). A deleted map
 * entry stays a full Item in Yjs (its key and position are kept: about 50 bytes encoded, 100,000 trimmed messages
 * still weigh 4.9 MB and take 0.2 s to load, and about 300 bytes of heap), because a later `set` of the same key
 * would point at it. Keys here are written once and never set again, so nothing points at a trimmed entry but its
 * own key's next value, which never comes: it can become a GC struct, and consecutive ones of one writer merge
 * into a single run of a few bytes. Should an update still point at one, Yjs integrates it as deleted, as it
 * does for anything that points into a GC run. Clocks are untouched: every replica's state vector and delete set
 * mean the same as before.
 * Returns the number of entries squashed.
 */
export function squashTrimmed(doc: Y.Doc, mapName: string): number {
	const map = doc.getMap(mapName);
	for (const [key, item] of map._map) if (item.deleted) map._map.delete(key);
	let squashed = 0;
	for (const [client, structs] of doc.store.clients) {
		const out: (Y.Item | Y.GC)[] = [];
		for (const struct of structs) {
			let next: Y.Item | Y.GC = struct;
			if (struct instanceof Y.Item && struct.deleted && struct.parent === map && struct.parentSub !== null) {
				next = new Y.GC(struct.id, struct.length);
				squashed++;
			}
			const last = out.at(-1);
			if (last instanceof Y.GC && next instanceof Y.GC && last.id.clock + last.length === next.id.clock) {
				last.length += next.length;
			} else {
				out.push(next);
			}
		}
		doc.store.clients.set(client, out);
	}
	return squashed;
}

import type { HocuspocusProvider } from '@hocuspocus/provider';
import type * as Y from 'yjs';
import { compareEvents, roomEvent, type RoomEvent } from '../protocol/events.ts';
import type { FailedMessage } from './store.ts';

/*
 * The steps of a room's rebuild (RoomStore's class comment says when and why), as functions of what they read.
 */

/** An own entry that cannot be written again, kept to show its sender why (and to resend it by hand). */
export function failureOf(roomId: string, key: string, value: unknown, reason: string): FailedMessage {
	const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
	return {
		roomId,
		clientMsgId: key,
		content: typeof v.content === 'string' ? v.content : '(unreadable message)',
		createdAt: typeof v.createdAt === 'string' ? v.createdAt : new Date().toISOString(),
		...(typeof v.replyToId === 'string' ? { replyToId: v.replyToId } : {}),
		reason,
	};
}

/**
 * Sorts the own entries of a refused copy: those to write again into the fresh one, and those kept as failed
 * (invalid, or dated after `horizon`, the server clock plus the allowed skew). Others' entries come back from the
 * server. Acknowledged is not enough to skip one: an update that followed the refused one is stored and
 * acknowledged, but held pending by the server's Yjs and never shown to anyone. So every own entry the fresh copy
 * lacks is written again (the server's check for existing keys looks at its document; the mirror is idempotent).
 */
export function ownEntriesToCarry(
	entries: Iterable<[string, unknown]>,
	own: { roomId: string; userId: string },
	reason: string,
	horizon: number,
): { carry: RoomEvent[]; failed: FailedMessage[] } {
	const carry: RoomEvent[] = [];
	const failed: FailedMessage[] = [];
	for (const [key, value] of entries) {
		const mine =
			typeof value === 'object' && value !== null && 'senderId' in value && value.senderId === own.userId;
		const parsed = roomEvent.safeParse(value);
		if (parsed.success && parsed.data.senderId !== own.userId) continue;
		if (!parsed.success || parsed.data.clientMsgId !== key) {
			if (mine) failed.push(failureOf(own.roomId, key, value, `refused: ${reason}`));
			continue;
		}
		if (Date.parse(parsed.data.createdAt) > horizon) {
			// Only messages are kept as failed (to show and resend); a refused edit or reaction is dropped.
			if (parsed.data.kind === 'message')
				failed.push(
					failureOf(own.roomId, key, parsed.data, 'refused: its time is ahead of the server clock'),
				);
			continue;
		}
		carry.push(parsed.data);
	}
	return { carry, failed };
}

/** The oldest message a room's live document holds: older ones were trimmed into history by the server. */
export function oldestMessage(map: Y.Map<unknown>): RoomEvent | undefined {
	let oldest: RoomEvent | undefined;
	for (const value of map.values()) {
		const parsed = roomEvent.safeParse(value);
		if (
			parsed.success &&
			parsed.data.kind === 'message' &&
			(!oldest || compareEvents(parsed.data, oldest) < 0)
		)
			oldest = parsed.data;
	}
	return oldest;
}

/**
 * Waits until the current provider has synced, for as long as `waiting()` holds; the provider may be replaced
 * meanwhile (a reopen), so each round waits on whichever is current.
 */
export async function untilSynced(current: () => HocuspocusProvider, waiting: () => boolean): Promise<void> {
	while (waiting() && !current().isSynced) {
		const provider = current();
		await new Promise<void>((resolve) => {
			const done = () => {
				provider.off('synced', done);
				provider.off('destroy', done);
				resolve();
			};
			provider.on('synced', done);
			provider.on('destroy', done);
		});
	}
}

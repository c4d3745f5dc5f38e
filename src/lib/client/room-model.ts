import { roomEvent, type RoomEvent } from '../protocol/events.ts';
import type { ChatMessage } from '../sync/model.ts';
import * as clock from './clock.ts';
import { serverConfig } from './server-config.svelte.ts';

/*
 * What the app's room stores add to the sync core's model (src/lib/sync/model.ts): the quick reactions, how the
 * list follows a room, and new own events (with the server's content filter).
 */

export {
	jitter,
	LOGIN_RETRY_MAX_MS,
	RETRY_MAX_MS,
	RETRY_MIN_MS,
	type ChatAttachment,
	type ChatMessage,
	type ChatUpload,
	type MessageStatus,
	type RoomNotice,
	type RoomPhase,
} from '../sync/model.ts';

/** The quick reactions offered under each message. */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '😢'] as const;

/** How the room list follows a room (see `Rooms.room`). */
export interface RoomStoreOptions {
	/** The user is no longer in this room: show the local copy read-only with this notice, never connect. */
	removedNotice?: string | null;
	/** The server said the user is not a member (the room's own close): the list decides what to show. */
	onRemoved?: () => void;
	/** The document's newest message changed (it arrived, was edited or deleted): the list's preview and order. */
	onNewest?: (message: ChatMessage) => void;
	/** Whether the room is on screen (reactive; default: always): only then does it publish the user's presence. */
	shown?: () => boolean;
}

/** Normalises what the user typed into message content: NFC, no trailing whitespace. */
export function normaliseContent(text: string): string {
	return text.normalize('NFC').replace(/\s+$/u, '');
}

/**
 * The server's content filter, applied before writing (never write what the server would refuse): `mask` hides the
 * listed words, `reject` refuses the text with the words named.
 */
export function filtered(content: string): string {
	const filter = serverConfig.filter;
	if (filter.mode === 'mask') return filter.mask(content);
	const blocked = filter.blocked(content);
	if (blocked.length > 0) throw new Error(`This server does not accept these words: ${blocked.join(', ')}.`);
	return content;
}

export type NewEventFields = Record<string, unknown> & { kind: RoomEvent['kind'] };

/**
 * An own event, new: the content filtered, then validated with the shared schema (never write what the server
 * would refuse). Throws with a reason for the user. A message composed earlier (one that waited for its files)
 * keeps the id and time it was shown with (`composed`).
 */
export function newEvent(
	fields: NewEventFields,
	senderId: string,
	composed?: { clientMsgId: string; createdAt: string },
): RoomEvent {
	if (typeof fields.content === 'string') fields = { ...fields, content: filtered(fields.content) };
	const parsed = roomEvent.safeParse({
		...fields,
		clientMsgId: composed?.clientMsgId ?? crypto.randomUUID(),
		senderId,
		createdAt: composed?.createdAt ?? new Date(clock.serverNow()).toISOString(),
	});
	if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? 'This cannot be sent.');
	return parsed.data;
}

import type { AttachmentRef, FoldedMessage } from '../protocol/events.ts';

/*
 * What a room shows, and the small rules around it: shared by the sync core (this folder) and the app's stores.
 */

/** Retries of passing failures (a refused login, an unanswered question) wait from 1 s up to 30 s. */
export const RETRY_MIN_MS = 1_000;
export const RETRY_MAX_MS = 30_000;
/** A refused login is retried at least every 4 s: the room is back within seconds of the server's database. */
export const LOGIN_RETRY_MAX_MS = 4_000;

/** `ms` give or take 30 %: clients that failed together do not all retry together. */
export function jitter(ms: number): number {
	return Math.round(ms * (0.7 + Math.random() * 0.6));
}

/** An own message: written here (`pending`), made durable by the server (`synced`), or refused for good. */
export type MessageStatus = 'pending' | 'synced' | 'failed';

/** One message as the view shows it. */
export interface ChatMessage {
	clientMsgId: string;
	senderId: string;
	content: string;
	createdAt: string;
	/** `createdAt` in ms, for ordering and day separators. */
	at: number;
	replyToId?: string;
	own: boolean;
	status: MessageStatus;
	/** Why it failed, for `failed` messages. */
	reason?: string;
	/** When it was last edited (ISO); the content is the edited text. */
	editedAt?: string;
	/** Deleted: by whom and when. The content is empty then. */
	deleted?: { by: string; at: string };
	/** Reactions in the order they were first given: emoji and who gave it. */
	reactions: { emoji: string; userIds: string[] }[];
	/** Files it carries, in the order shown. */
	attachments?: ChatAttachment[];
	/** An own message whose files are still on their way: it is written to the room once they are stored. */
	upload?: ChatUpload;
}

/**
 * A file a message carries, as shown: a stored file (`AttachmentRef`; its id is the upload's), or one on its way
 * from this device (its id is local, and `localUrl` shows the file itself until it is stored).
 */
export interface ChatAttachment extends Omit<AttachmentRef, 'id'> {
	id: string;
	localUrl?: string;
}

/**
 * Where an own message with files is: `waiting` for a connection, `uploading` (`progress` 0–1 of all its bytes),
 * or `failed` with a reason (it may be retried or cancelled). Once every file is stored it is written to the room
 * and has the usual message states.
 */
export interface ChatUpload {
	state: 'waiting' | 'uploading' | 'failed';
	progress: number;
	reason?: string;
}

/** An own message the server refused for good; kept so that nothing disappears from its sender's view. */
export interface FailedMessage {
	roomId: string;
	clientMsgId: string;
	content: string;
	createdAt: string;
	replyToId?: string;
	reason: string;
}

export interface RoomNotice {
	kind: 'info' | 'warning' | 'error';
	text: string;
}

/**
 * Where a room is: `loading` its device copy, `ready` to read and write, `removed` (the user is not in it any more:
 * readable, not synced, nothing can be written), or `closed` by its owner.
 */
export type RoomPhase = 'loading' | 'ready' | 'removed' | 'closed';

/** A folded message (the message with what later events did to it) as the view shows it. */
export function toChatMessage(
	{ event, content, editedAt, deleted, reactions }: FoldedMessage,
	userId: string,
): ChatMessage {
	return {
		clientMsgId: event.clientMsgId,
		senderId: event.senderId,
		content,
		createdAt: event.createdAt,
		at: Date.parse(event.createdAt),
		replyToId: event.replyToId,
		own: event.senderId === userId,
		status: 'synced',
		editedAt,
		deleted,
		reactions: [...reactions].map(([emoji, userIds]) => ({ emoji, userIds })),
		...(event.attachments && !deleted ? { attachments: event.attachments } : {}),
	};
}

/** A refused message the document no longer holds, shown to its sender as failed. */
export function failedToChatMessage(f: FailedMessage, userId: string): ChatMessage {
	return {
		clientMsgId: f.clientMsgId,
		senderId: userId,
		content: f.content,
		createdAt: f.createdAt,
		at: Date.parse(f.createdAt) || 0,
		replyToId: f.replyToId,
		own: true,
		status: 'failed',
		reason: f.reason,
		reactions: [],
	};
}

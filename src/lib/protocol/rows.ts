import type { MessageRow } from './api.ts';
import type { AttachmentRef, RoomEvent } from './events.ts';

/**
 * The event↔row mapping of the mirror, both ways in one place: the server stores each event as a `messages` row
 * (`eventColumns`), and the history API answers with those rows, which a client turns back into the events they
 * mirror (`rowToEvent`). A message's and an edit's text and a reaction's emoji share the `content` column; a
 * message's files (as validated, `attachmentRef`) are the `attachments` column, null when it has none.
 */
export interface EventColumns {
	clientMsgId: string;
	kind: RoomEvent['kind'];
	senderId: string;
	content: string | null;
	replyToId: string | null;
	targetId: string | null;
	createdAt: string;
	attachments: AttachmentRef[] | null;
}

export function eventColumns(event: RoomEvent): EventColumns {
	return {
		clientMsgId: event.clientMsgId,
		kind: event.kind,
		senderId: event.senderId,
		content: 'content' in event ? event.content : 'emoji' in event ? event.emoji : null,
		replyToId: event.kind === 'message' ? (event.replyToId ?? null) : null,
		targetId: event.kind === 'message' ? null : event.targetId,
		createdAt: event.createdAt,
		attachments: event.kind === 'message' ? (event.attachments ?? null) : null,
	};
}

/**
 * A history row as the room event it mirrors. The content of a deleted message or edit comes back `null` and
 * becomes empty, and a deleted message's files are not listed: the delete event, newer, says why. Unknown kinds
 * (a newer server) are skipped.
 */
export function rowToEvent(row: MessageRow): RoomEvent | null {
	const base = { clientMsgId: row.clientMsgId, senderId: row.senderId, createdAt: row.createdAt };
	switch (row.kind) {
		case 'message':
			return {
				kind: 'message',
				...base,
				content: row.content ?? '',
				...(row.replyToId ? { replyToId: row.replyToId } : {}),
				...(row.attachments?.length ? { attachments: row.attachments } : {}),
			};
		case 'edit':
			return row.targetId
				? { kind: 'edit', ...base, targetId: row.targetId, content: row.content ?? '' }
				: null;
		case 'delete':
			return row.targetId ? { kind: 'delete', ...base, targetId: row.targetId } : null;
		case 'reaction':
		case 'unreaction':
			return row.targetId && row.content
				? { kind: row.kind, ...base, targetId: row.targetId, emoji: row.content }
				: null;
		default:
			return null;
	}
}

import type { MessageRow } from '../protocol/api.ts';
import type { RoomEvent } from '../protocol/events.ts';

/**
 * A row of the server's history (`GET /api/rooms/:id/messages`) as the room event it mirrors. The content of a
 * deleted message or edit comes back `null` and becomes empty: the delete event, newer, says why.
 * Unknown kinds (a newer server) are skipped.
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

import { z } from './zod.ts';

/** Room and user ids are uuids; clientMsgIds are uuids chosen by the client. */
export const uuid = z.uuid({ error: 'expected a uuid' });

export const roomDocumentPrefix = 'room:';

/**
 * `room:<uuid>` → the uuid, or null when the name is not a room document. Only the lower-case spelling names a
 * room: another spelling would be a second live document of the same room, which revocation would not find.
 */
export function roomIdFromDocumentName(name: string): string | null {
	return idFromDocumentName(roomDocumentPrefix, name);
}

/** `<prefix><lower-case uuid>` → the uuid, or null for any other name or spelling. */
export function idFromDocumentName(prefix: string, name: string): string | null {
	if (!name.startsWith(prefix)) return null;
	const id = name.slice(prefix.length);
	return uuid.safeParse(id).success && id === id.toLowerCase() ? id : null;
}

export function roomDocumentName(roomId: string): string {
	return `${roomDocumentPrefix}${roomId}`;
}

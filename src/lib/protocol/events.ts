import { z } from 'zod';
import { uuid } from './ids.ts';
import { limits } from './limits.ts';

/** The one shared map of a room document: an append-only log keyed by clientMsgId. */
export const messagesMapName = 'messages';

/**
 * Message text: no NUL characters, not blank, 1..4000 characters counted after NFC normalisation,
 * so that the server and every client agree on the length whatever form the text arrived in.
 */
export const messageContent = z
	.string()
	.refine((s) => !s.includes('\u0000'), 'content must not contain NUL characters')
	.refine((s) => s.trim().length >= limits.contentMin, 'content must not be empty')
	.refine(
		(s) => s.normalize('NFC').length <= limits.contentMax,
		`content must be at most ${limits.contentMax} characters`,
	);

/** ISO-8601 timestamp with a timezone, as produced by `Date.prototype.toISOString`. */
export const isoTimestamp = z.iso.datetime({ offset: true, error: 'expected an ISO-8601 timestamp' });

export const messageEvent = z.strictObject({
	kind: z.literal('message'),
	clientMsgId: uuid,
	senderId: uuid,
	content: messageContent,
	createdAt: isoTimestamp,
	replyToId: uuid.optional(),
});

/** Every event kind a room's `messages` map may hold. Later kinds (edit, delete, reaction) join this union. */
export const roomEvent = z.discriminatedUnion('kind', [messageEvent]);

export type MessageEvent = z.infer<typeof messageEvent>;
export type RoomEvent = z.infer<typeof roomEvent>;
export type RoomEventKind = RoomEvent['kind'];

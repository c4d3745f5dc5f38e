import { z } from './zod.ts';
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

/** A reaction: one emoji (with its modifiers and joiners), no spaces, at most 16 UTF-16 units. */
export const reactionEmoji = z
	.string()
	.min(1)
	.max(16)
	.regex(/^[^\s]+$/u, 'a reaction is one emoji, without spaces')
	.refine((s) => /\p{Extended_Pictographic}|\p{Regional_Indicator}/u.test(s), 'a reaction must be an emoji');

const eventBase = { clientMsgId: uuid, senderId: uuid, createdAt: isoTimestamp };

/** An upload's id, and so a stored file's (`/api/uploads`, `/api/files/:id`): 16 random bytes in hex. */
export const uploadId = z.string().regex(/^[0-9a-f]{32}$/, 'expected an upload id (32 hex digits)');

/**
 * Images a browser may show inline (`/api/files/:id` serves them so, and clients show them in the message): raster
 * formats that run nothing. Every other file, SVG and HTML included, is a download.
 */
export const INLINE_IMAGE_TYPES: ReadonlySet<string> = new Set([
	'image/png',
	'image/jpeg',
	'image/gif',
	'image/webp',
	'image/avif',
]);

/** A file's name as shown: one line, no control characters, not a path. */
export const attachmentName = z
	.string()
	.min(1)
	.max(limits.attachmentNameMax)
	.regex(/^[^\p{Cc}/\\]+$/u, 'a file name has no control characters, / or \\');

/** A media type, `type/subtype`. */
export const mediaType = z.string().regex(/^[\w.+-]+\/[\w.+-]+$/, 'expected a media type');

/**
 * A file a message carries (issue 19): uploaded first (`/api/uploads`, docs/protocol.md section 7), by the sender,
 * for this room, completely; the server refuses a message whose files are not so, or whose size or media type
 * is not the stored file's. `mediaType` is what the server sniffed (the upload's answer says it); images may
 * carry their size in pixels and a placeholder (a ThumbHash, base64) to show before the file is loaded.
 */
export const attachmentRef = z.strictObject({
	id: uploadId,
	name: attachmentName,
	size: z.number().int().nonnegative(),
	mediaType,
	width: z.number().int().positive().max(100_000).optional(),
	height: z.number().int().positive().max(100_000).optional(),
	placeholder: z
		.string()
		.max(limits.attachmentPlaceholderMax)
		.regex(/^[A-Za-z0-9+/]+={0,2}$/, 'expected base64')
		.optional(),
});

export const messageEvent = z.strictObject({
	kind: z.literal('message'),
	...eventBase,
	content: messageContent,
	replyToId: uuid.optional(),
	/** Files, in the order shown. `content` is still 1–4000 characters: the caption, or the files' names. */
	attachments: z
		.array(attachmentRef)
		.min(1)
		.max(limits.attachmentsPerMessage)
		.refine((list) => new Set(list.map((a) => a.id)).size === list.length, 'a file is attached once')
		.optional(),
});

/** A new text for the sender's own message `targetId`. The latest edit (display order) is shown. */
export const editEvent = z.strictObject({
	kind: z.literal('edit'),
	...eventBase,
	targetId: uuid,
	content: messageContent,
});

/** Deletes message `targetId`: by its sender, or by a room owner or admin. Final: nothing undoes it. */
export const deleteEvent = z.strictObject({ kind: z.literal('delete'), ...eventBase, targetId: uuid });

/**
 * Adds (`reaction`) or takes back (`unreaction`) the sender's `emoji` on message `targetId`. For each
 * (message, sender, emoji) the latest of these events (display order) decides, so repeating one changes nothing.
 */
export const reactionEvent = z.strictObject({
	kind: z.literal('reaction'),
	...eventBase,
	targetId: uuid,
	emoji: reactionEmoji,
});
export const unreactionEvent = z.strictObject({
	kind: z.literal('unreaction'),
	...eventBase,
	targetId: uuid,
	emoji: reactionEmoji,
});

/** Every event kind a room's `messages` map may hold. */
export const roomEvent = z.discriminatedUnion('kind', [
	messageEvent,
	editEvent,
	deleteEvent,
	reactionEvent,
	unreactionEvent,
]);

export type MessageEvent = z.infer<typeof messageEvent>;
export type AttachmentRef = z.infer<typeof attachmentRef>;
export type ReactionEvent = z.infer<typeof reactionEvent> | z.infer<typeof unreactionEvent>;
export type RoomEvent = z.infer<typeof roomEvent>;
/** Events that point at a message. */
export type TargetedEvent = Exclude<RoomEvent, MessageEvent>;

/**
 * The display order, the same on every replica: by time (`at`, ms since the epoch), ties broken by clientMsgId.
 * Read positions are points in this order.
 */
export function compareOrder(
	a: { at: number; clientMsgId: string },
	b: { at: number; clientMsgId: string },
): number {
	return a.at - b.at || (a.clientMsgId < b.clientMsgId ? -1 : a.clientMsgId > b.clientMsgId ? 1 : 0);
}

/** Events in the display order (`compareOrder` of their createdAt). */
export function compareEvents(
	a: { createdAt: string; clientMsgId: string },
	b: { createdAt: string; clientMsgId: string },
): number {
	return compareOrder(
		{ at: Date.parse(a.createdAt), clientMsgId: a.clientMsgId },
		{ at: Date.parse(b.createdAt), clientMsgId: b.clientMsgId },
	);
}

/** A message with everything later events did to it. */
export interface FoldedMessage {
	event: MessageEvent;
	/** The text to show: the latest edit's, or the original. */
	content: string;
	/** The latest edit, if any. */
	editedAt?: string;
	deleted?: { by: string; at: string };
	/** emoji → the users whose latest event for it is a `reaction`, in the order they reacted. */
	reactions: Map<string, string[]>;
}

/**
 * Applies edits, deletes and reactions to the messages they target. Pure and order-independent: every replica
 * that holds the same events shows the same thing. Events whose target this replica does not hold are skipped
 * (they apply once it arrives). An edit counts only from the message's own sender; who may delete is checked by
 * the server when the delete is written.
 */
export function foldEvents(events: Iterable<RoomEvent>): Map<string, FoldedMessage> {
	const folded = new Map<string, FoldedMessage>();
	const targeted: TargetedEvent[] = [];
	for (const event of events) {
		if (event.kind === 'message')
			folded.set(event.clientMsgId, { event, content: event.content, reactions: new Map() });
		else targeted.push(event);
	}
	targeted.sort(compareEvents);
	const latestReaction = new Map<string, ReactionEvent>();
	for (const event of targeted) {
		const target = folded.get(event.targetId);
		if (!target) continue;
		switch (event.kind) {
			case 'edit':
				if (event.senderId !== target.event.senderId) break;
				target.content = event.content;
				target.editedAt = event.createdAt;
				break;
			case 'delete':
				target.deleted ??= { by: event.senderId, at: event.createdAt };
				break;
			default:
				latestReaction.set(`${event.targetId} ${event.senderId} ${event.emoji}`, event);
		}
	}
	for (const event of [...latestReaction.values()].sort(compareEvents)) {
		if (event.kind !== 'reaction') continue;
		const target = folded.get(event.targetId) as FoldedMessage;
		const users = target.reactions.get(event.emoji) ?? [];
		users.push(event.senderId);
		target.reactions.set(event.emoji, users);
	}
	for (const message of folded.values()) {
		if (message.deleted) {
			message.content = '';
			message.reactions.clear();
		}
	}
	return folded;
}

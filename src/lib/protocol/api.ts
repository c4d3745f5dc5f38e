import { z } from './zod.ts';
import { uuid } from './ids.ts';
import { attachmentRef, mediaType, uploadId } from './events.ts';
import { limits } from './limits.ts';
import { NAME_CHARS } from './names.ts';

/** Postgres text cannot hold NUL: refused as input, never passed on to a query that would fail on it. */
export const noNul = (s: string) => !s.includes('\u0000');
export const noNulMessage = 'must not contain NUL characters';

/**
 * An ISO timestamp Postgres can store: years 0001 to 9999 (`z.iso.datetime` also accepts year 0000, which
 * Postgres refuses).
 */
export const storableTimestamp = z.iso
	.datetime({ offset: true, error: 'expected an ISO-8601 timestamp' })
	.refine((s) => !s.startsWith('0000'), 'expected a timestamp from year 0001 to 9999');

export const userName = z
	.string({ error: 'name must be a string' })
	.min(limits.nameMin, `name must be at least ${limits.nameMin} characters`)
	.max(limits.nameMax, `name must be at most ${limits.nameMax} characters`)
	.regex(new RegExp(`^[${NAME_CHARS}]+$`), 'name may only contain letters, digits, "_", "." and "-"');

export const password = z
	.string({ error: 'password must be a string' })
	.min(limits.passwordMin, `password must be at least ${limits.passwordMin} characters`)
	.max(limits.passwordMax, `password must be at most ${limits.passwordMax} characters`);

export const credentialsBody = z.strictObject({ name: userName, password });
/** Login checks only the shape: a wrong name and a wrong password must get the same answer. */
export const loginBody = z.strictObject({
	name: z
		.string()
		.min(1)
		.max(limits.nameMax * 4)
		.refine(noNul, noNulMessage),
	password: z
		.string()
		.min(1)
		.max(limits.passwordMax * 4),
});
export const refreshBody = z.strictObject({ refreshToken: z.string().min(1).max(512).optional() });

export const roles = ['owner', 'admin', 'member', 'readonly'] as const;
export const role = z.enum(roles);
export type Role = z.infer<typeof role>;

/**
 * Who moderates a room: its owners and admins may delete anyone's message and export deleted content. Only in
 * group rooms: in a 1:1 room both people are owners, and neither may delete what the other wrote.
 */
export function moderates(role: Role | null | undefined, isGroup: boolean): boolean {
	return isGroup && (role === 'owner' || role === 'admin');
}

export const createRoomBody = z
	.strictObject({
		name: z.string().trim().min(1).max(limits.roomNameMax).refine(noNul, noNulMessage).optional(),
		isGroup: z.boolean(),
		memberIds: z.array(uuid).max(limits.roomMembersMax),
	})
	.superRefine((body, ctx) => {
		if (!body.isGroup && body.memberIds.length !== 1) {
			ctx.addIssue({
				code: 'custom',
				path: ['memberIds'],
				message: 'a 1:1 room has exactly one other member',
			});
		}
		if (body.isGroup && !body.name) {
			ctx.addIssue({ code: 'custom', path: ['name'], message: 'a group room needs a name' });
		}
	});

export const addMemberBody = z.strictObject({
	userId: uuid,
	role: z.enum(['admin', 'member', 'readonly']).default('member'),
});

/**
 * A member's new role (`PATCH /api/rooms/:id/members/:userId`). `owner` hands the group over: only its owner may,
 * and becomes an admin.
 */
export const changeRoleBody = z.strictObject({ role: z.enum(['owner', 'admin', 'member', 'readonly']) });

/** `PATCH /api/rooms/:id`: a group's new name or topic (an empty topic removes it); owner and admins only. */
export const updateRoomBody = z
	.strictObject({
		name: z.string().trim().min(1).max(limits.roomNameMax).refine(noNul, noNulMessage).optional(),
		topic: z.string().trim().max(limits.roomTopicMax).refine(noNul, noNulMessage).optional(),
	})
	.refine((body) => body.name !== undefined || body.topic !== undefined, {
		message: 'give a name or a topic to change',
	});

/** `POST /api/auth/password`: the current password proves it is the account's owner. */
export const changePasswordBody = z.strictObject({
	currentPassword: z
		.string()
		.min(1)
		.max(limits.passwordMax * 4),
	newPassword: password,
});

/** `DELETE /api/me`: the password, once more. */
export const deleteAccountBody = z.strictObject({
	password: z
		.string()
		.min(1)
		.max(limits.passwordMax * 4),
});

export const exportQuery = z.strictObject({
	format: z.enum(['jsonl', 'csv']).default('jsonl'),
	since: storableTimestamp.optional(),
	until: storableTimestamp.optional(),
	/** The content of deleted messages too: room owners and admins only. */
	includeDeleted: z
		.enum(['true', 'false'], { error: 'includeDeleted must be true or false' })
		.transform((v) => v === 'true')
		.optional(),
});

export const messagesQuery = z.strictObject({
	before: z.coerce.number().int().positive().optional(),
	limit: z.coerce.number().int().min(1).max(limits.pageSizeMax).default(limits.pageSizeDefault),
});

export const searchQuery = z.strictObject({
	q: z.string().trim().min(1).max(200).refine(noNul, noNulMessage),
	roomId: uuid.optional(),
});

export const usersQuery = z.strictObject({
	q: z.string().trim().max(limits.nameMax).refine(noNul, noNulMessage).default(''),
});

// ---------------------------------------------------------------------------------------------------------------
// Answers of the API. A client checks them rather than casting: the server is trusted to be honest, not to be the
// same version as a cached app. Each type is the schema's, so the server's answers and the client's checks are
// one definition.

/** Postgres' `json_build_object` renders timestamps as `2026-11-25T20:30:00.123+00:00`: any parseable date. */
const answeredTimestamp = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'expected a timestamp');

export const publicUser = z.object({ id: uuid, name: z.string() });
export type PublicUser = z.infer<typeof publicUser>;

export const authResponse = z.object({
	user: publicUser,
	accessToken: z.string().min(1),
	refreshToken: z.string().min(1),
});
export type AuthResponse = z.infer<typeof authResponse>;

export const roomMember = publicUser.extend({
	role,
	/** When the member last had a room open (ISO), or null if never. */
	lastSeen: answeredTimestamp.nullable().default(null),
});
export type RoomMember = z.infer<typeof roomMember>;

export const room = z.object({
	id: uuid,
	name: z.string().nullable(),
	/** A group's topic (null when none; absent from servers before it existed). */
	topic: z.string().nullable().default(null),
	isGroup: z.boolean(),
	members: z.array(roomMember),
});
export type Room = z.infer<typeof room>;

/** One mirrored event, as in the history API (and, with each file's hash and address, the export). */
export const messageRow = z.object({
	seq: z.number(),
	roomId: uuid,
	clientMsgId: uuid,
	kind: z.string(),
	senderId: uuid,
	senderName: z.string().nullable(),
	content: z.string().nullable(),
	replyToId: uuid.nullable(),
	targetId: uuid.nullable(),
	createdAt: answeredTimestamp,
	receivedAt: answeredTimestamp,
	/**
	 * A message's files, as its event carries them (`attachmentRef`); absent when it has none, for other kinds, when
	 * the message is deleted (masked like `content`), and from a server older than the field.
	 */
	attachments: z.array(attachmentRef).optional(),
});
export type MessageRow = z.infer<typeof messageRow>;

/**
 * A file of an exported message: what the message says of it, the SHA-256 of its stored bytes (`null` when the
 * server no longer holds the file, e.g. its uploader's account was deleted) and where a member downloads it.
 */
export const exportedAttachment = z.object({
	id: uploadId,
	name: z.string(),
	size: z.number(),
	mediaType,
	sha256: z
		.string()
		.regex(/^[0-9a-f]{64}$/)
		.nullable(),
	/** `/api/files/<id>`, relative to the server. */
	url: z.string(),
});
export type ExportedAttachment = z.infer<typeof exportedAttachment>;

/** One line of a JSONL export (`GET /api/rooms/:id/export`, `npm run export`): a history row, files with hashes. */
export const exportRow = messageRow.extend({ attachments: z.array(exportedAttachment).optional() });
export type ExportRow = z.infer<typeof exportRow>;

/** `GET /api/rooms/:id/messages`: a page of history, oldest first; `nextBefore` asks for the page before it. */
export const messagePage = z.object({ items: z.array(messageRow), nextBefore: z.number().nullable() });

/** `GET /api/users`: people by name, with when they were last seen. */
export const userHit = publicUser.extend({ lastSeen: answeredTimestamp.nullable() });
export type UserHit = z.infer<typeof userHit>;
export const userList = z.object({ items: z.array(userHit) });

/** `GET /api/search`: matching events, each with a highlighted snippet. */
export const searchResults = z.object({ items: z.array(messageRow.extend({ snippet: z.string() })) });

/** One of the user's live sessions (`GET /api/me/sessions`): a sign-in on some device, until it ends. */
export const sessionInfo = z.object({
	id: uuid,
	/** What it was started from ("Firefox on Windows"), or null when unknown. */
	device: z.string().nullable(),
	createdAt: answeredTimestamp,
	/** When it last renewed its access (it does so while in use). */
	lastUsedAt: answeredTimestamp,
	/** The session asking. */
	current: z.boolean(),
});
export type SessionInfo = z.infer<typeof sessionInfo>;
export const sessionList = z.object({ items: z.array(sessionInfo) });

/** `DELETE /api/me/sessions/:id`: `others` for every session but the one asking, or one session's id. */
export const sessionParams = z.strictObject({ id: z.union([z.literal('others'), uuid]) });

import { z } from './zod.ts';
import { uuid } from './ids.ts';
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

/** A member's new role (`PATCH /api/rooms/:id/members/:userId`); nobody becomes owner this way. */
export const changeRoleBody = z.strictObject({ role: z.enum(['admin', 'member', 'readonly']) });

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

export interface PublicUser {
	id: string;
	name: string;
}
export interface AuthResponse {
	user: PublicUser;
	accessToken: string;
	refreshToken: string;
}
export interface RoomMember extends PublicUser {
	role: Role;
	/** When the member last had a room open (ISO), or null if never. */
	lastSeen: string | null;
}
export interface Room {
	id: string;
	name: string | null;
	isGroup: boolean;
	members: RoomMember[];
}
/** One mirrored event, as in the export and the history API. */
export interface MessageRow {
	seq: number;
	roomId: string;
	clientMsgId: string;
	kind: string;
	senderId: string;
	senderName: string | null;
	content: string | null;
	replyToId: string | null;
	targetId: string | null;
	createdAt: string;
	receivedAt: string;
}

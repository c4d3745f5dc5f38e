import { z } from '../protocol/zod.ts';
import type { AuthResponse, MessageRow, PublicUser, Room, RoomMember } from '../protocol/api.ts';
import { role } from '../protocol/api.ts';
import { uuid } from '../protocol/ids.ts';
import { roomState, type RoomState } from '../protocol/user-channel.ts';

/**
 * Schemas for the API answers the client relies on. The server is trusted to be honest but not to be the
 * same version as this bundle (a cached app shell talks to a newer server), so answers are checked, not cast.
 * Each one `satisfies` the shared interface, so a change in `protocol/api.ts` fails the type check here.
 */

/** Postgres' `json_build_object` renders timestamps as `2026-11-25T20:30:00.123+00:00`: accept any parseable date. */
const timestamp = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'expected a timestamp');

export const publicUser = z.object({ id: uuid, name: z.string() }) satisfies z.ZodType<PublicUser>;

export const authResponse = z.object({
	user: publicUser,
	accessToken: z.string().min(1),
	refreshToken: z.string().min(1),
}) satisfies z.ZodType<AuthResponse>;

export const roomMember = z.object({
	id: uuid,
	name: z.string(),
	role,
	lastSeen: timestamp.nullable().default(null),
}) satisfies z.ZodType<RoomMember>;

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
	createdAt: timestamp,
	receivedAt: timestamp,
}) satisfies z.ZodType<MessageRow>;

export const room = z.object({
	id: uuid,
	name: z.string().nullable(),
	isGroup: z.boolean(),
	members: z.array(roomMember),
}) satisfies z.ZodType<Room>;

/**
 * One of the user's rooms as the list shows it: the user channel's `RoomState` (the API's list items carry the
 * same fields, and a `lastMessage` with more of them, which the schema keeps out).
 */
export const roomSummary = roomState;
export type RoomSummary = RoomState;

export const roomList = z.object({ items: z.array(roomSummary) });

export const userHit = publicUser.extend({ lastSeen: timestamp.nullable() });
export type UserHit = z.infer<typeof userHit>;
export const userList = z.object({ items: z.array(userHit) });

export const searchResults = z.object({ items: z.array(messageRow.extend({ snippet: z.string() })) });

export const messagePage = z.object({ items: z.array(messageRow), nextBefore: z.number().nullable() });

/** The claims of an access token this client reads: only when it expires (it never trusts the rest). */
export const accessClaims = z.object({ exp: z.number() });

/** The one profile kept on the device: who was signed in last. Never a token. */
export const profile = publicUser;
export type Profile = z.infer<typeof profile>;
export type AuthResponseShape = z.infer<typeof authResponse>;

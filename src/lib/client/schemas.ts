import { z } from '../protocol/zod.ts';
import { publicUser } from '../protocol/api.ts';
import { roomState, type RoomState } from '../protocol/user-channel.ts';

/**
 * What the client keeps of the API's answers beyond their shapes (those are in protocol/api.ts, shared with the
 * server): the room list as the list shows it, the token claims it reads, the profile kept on the device.
 */
export {
	authResponse,
	messagePage,
	messageRow,
	publicUser,
	room,
	roomMember,
	searchResults,
	userHit,
	userList,
	type UserHit,
} from '../protocol/api.ts';

/**
 * One of the user's rooms as the list shows it: the user channel's `RoomState` (the API's list items carry the
 * same fields, and a `lastMessage` with more of them, which the schema keeps out).
 */
export const roomSummary = roomState;
export type RoomSummary = RoomState;

export const roomList = z.object({ items: z.array(roomSummary) });

/** The claims of an access token this client reads: only when it expires (it never trusts the rest). */
export const accessClaims = z.object({ exp: z.number() });

/** The one profile kept on the device: who was signed in last. Never a token. */
export const profile = publicUser;
export type Profile = z.infer<typeof profile>;

import type { Connection } from '@hocuspocus/server';
import { ROOM_ACTIVITY_PROTOCOL } from '#protocol/version.ts';
import type { RoomState, UserChannelMessage } from '#protocol/user-channel.ts';
import type { MessagePosition, RoomListItem } from '../data/rooms.ts';
import type { CollabContext } from './authentication.ts';

/*
 * How the user channels (user-channels.ts) say what they read: the messages of src/lib/protocol/user-channel.ts
 * built from the database's views of a room.
 */

export function send(connection: Connection, message: UserChannelMessage): void {
	connection.sendStateless(JSON.stringify(message));
}

/** Whether a connection's client understands `room-activity` (bots that say no version get `room`). */
export function knowsActivity(connection: Connection): boolean {
	const { protocol } = connection.context as CollabContext;
	return protocol !== null && protocol >= ROOM_ACTIVITY_PROTOCOL;
}

/** A room's newest message in short, as the channel sends it. */
export function lastMessageOf(room: RoomListItem): RoomState['lastMessage'] {
	const last = room.lastMessage;
	return last
		? {
				clientMsgId: last.clientMsgId,
				senderId: last.senderId,
				senderName: last.senderName,
				content: last.content,
				createdAt: last.createdAt,
			}
		: null;
}

/** A room as the channel sends it: its newest message in short, and who of its members is online. */
export function toState(room: RoomListItem, online: ReadonlySet<string>): RoomState {
	return {
		...room,
		members: room.members.map((m) => ({ ...m, online: online.has(m.id) })),
		lastMessage: lastMessageOf(room),
	};
}

/**
 * Whether a read position is surely at or past a message in display order (`created_at`, then the id). Times
 * arrive here to the millisecond while Postgres keeps microseconds: within one millisecond only the message itself
 * is surely reached.
 */
export function reaches(position: MessagePosition, message: MessagePosition): boolean {
	const [at, messageAt] = [Date.parse(position.at), Date.parse(message.at)];
	return at > messageAt || (at === messageAt && position.clientMsgId === message.clientMsgId);
}

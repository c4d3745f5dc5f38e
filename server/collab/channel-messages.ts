import type { Connection, Document } from '@hocuspocus/server';
import { roomDocumentName } from '#protocol/ids.ts';
import { OPEN_ROOM_ACTIVITY_PROTOCOL, ROOM_ACTIVITY_PROTOCOL } from '#protocol/version.ts';
import type { NotifyLevel, RoomState, UserChannelMessage } from '#protocol/user-channel.ts';
import type { ClusterEvent } from '../events/bus.ts';
import { notifies } from './activity.ts';
import type { MessagePosition, RoomListItem } from '../data/rooms.ts';
import type { CollabContext } from './authentication.ts';

/*
 * How the user channels (user-channels.ts) say what they read: the messages of src/lib/protocol/user-channel.ts
 * built from the database's views of a room.
 */

/** What a channel keeps of one of its rooms (its members are the node's, in `RoomWatch`). */
export interface RoomEntry {
	name: string | null;
	isGroup: boolean;
	notify: NotifyLevel;
}

/** The `notify` messages a member of a room is due for new messages of someone else's, by their level. */
export function notifiesOf(
	event: Extract<ClusterEvent, { type: 'activity' }>,
	userId: string,
	room: RoomEntry,
): UserChannelMessage[] {
	if (userId === event.writer.id) return [];
	return event.messages.flatMap((message) => {
		const mention = message.mentions.includes(userId);
		if (!notifies(room.notify, mention)) return [];
		return [
			{
				type: 'notify' as const,
				roomId: event.roomId,
				roomName: room.name,
				isGroup: room.isGroup,
				clientMsgId: message.clientMsgId,
				senderId: event.writer.id,
				senderName: event.writer.name,
				content: message.content,
				mention,
			},
		];
	});
}

export function send(connection: Connection, message: UserChannelMessage): void {
	connection.sendStateless(JSON.stringify(message));
}

/** Whether a connection's client understands `room-activity` (bots that say no version get `room`). */
export function knowsActivity(connection: Connection): boolean {
	const { protocol } = connection.context as CollabContext;
	return protocol !== null && protocol >= ROOM_ACTIVITY_PROTOCOL;
}

/**
 * The sockets (Hocuspocus' `socketId`) on which this node has a room's document open: a user channel on one of
 * them shares the socket with the room.
 */
export function socketsWithRoom(documents: ReadonlyMap<string, Document>, roomId: string): Set<string> {
	const sockets = new Set<string>();
	for (const connection of documents.get(roomDocumentName(roomId))?.getConnections() ?? [])
		sockets.add(connection.socketId);
	return sockets;
}

/**
 * Whether a channel's devices all work out a room's new messages themselves: each speaks protocol 6 or later and
 * has the room's document open on its channel's socket, so it holds every message the moment it is relayed and
 * hears the user's read position there (`reads`): it counts its unread ones itself (docs/protocol.md section 10).
 * They get no `room-activity` after a message there, or a read.
 */
export function allSeeRoom(connections: Iterable<Connection>, sockets: ReadonlySet<string>): boolean {
	if (sockets.size === 0) return false;
	for (const connection of connections) {
		const { protocol } = connection.context as CollabContext;
		if (protocol === null || protocol < OPEN_ROOM_ACTIVITY_PROTOCOL || !sockets.has(connection.socketId))
			return false;
	}
	return true;
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

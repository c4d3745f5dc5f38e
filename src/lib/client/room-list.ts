import { localSnippet, searchWords } from './format.ts';
import type { ChatMessage } from './room-model.ts';
import type { RoomSummary } from './schemas.ts';
import { compareEvents } from '../protocol/events.ts';
import { roomState, type RoomActivity } from '../protocol/user-channel.ts';
import type { RemovalReason, RemovedRoom } from './store.ts';

/*
 * The room list's small rules: its order, what a removed room says, and search over the rooms on the device.
 */

/** A search result found on this device (the server's have the same fields and more). */
export interface LocalResult {
	roomId: string;
	clientMsgId: string;
	senderId: string;
	createdAt: string;
	snippet: string;
}

/**
 * Whether the user may open a room: `member` (in the list), `removed` (no longer, its local copy still here),
 * `checking` (not in the list, the server is being asked), `unknown` (no such room, or not a member).
 */
export type RoomAccess = 'member' | 'removed' | 'checking' | 'unknown';

/** The notice of a room the user is no longer in. */
export function removalText(reason: RemovalReason): string {
	switch (reason) {
		case 'left':
			return 'You left this room';
		case 'deleted':
			return 'This room was deleted';
		default:
			return 'You were removed from this room';
	}
}

/** Newest activity first; ties by id, so every device shows the same order. */
export function sortRooms(list: RoomSummary[]): RoomSummary[] {
	return [...list].sort(
		(a, b) => Date.parse(b.activityAt) - Date.parse(a.activityAt) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
	);
}

/**
 * The list the user channel sent replaces `current`: rooms missing from it went while this device was away. They
 * join `removed` (their local copy kept until dismissed), and rooms back in the list leave it.
 */
export function afterListState(
	current: RoomSummary[],
	removed: RemovedRoom[],
	list: RoomSummary[],
): { gone: RoomSummary[]; removed: RemovedRoom[] } {
	const ids = new Set(list.map((r) => r.id));
	const gone = current.filter((r) => !ids.has(r.id));
	return {
		gone,
		removed: [
			...removed.filter((r) => !ids.has(r.room.id)),
			...gone.map((room) => ({ room, reason: 'removed' as const })),
		],
	};
}

/**
 * The room of `list` a `room-activity` is about, with its newest message and counts replaced and the rest as it
 * was; undefined when the list does not hold it (a `room` or the next `state` brings it whole).
 */
export function withActivity(list: RoomSummary[], change: RoomActivity): RoomSummary | undefined {
	const room = list.find((r) => r.id === change.roomId);
	return (
		room && {
			...room,
			lastMessage: change.lastMessage,
			activityAt: change.activityAt,
			unread: change.unread,
			mentions: change.mentions,
		}
	);
}

/**
 * The room of `list` with a message of its open document as its newest, or undefined when the list already says
 * as much (or does not hold the room). A client of protocol 6 is sent no `room-activity` after a message in a room
 * it has open (docs/protocol.md section 10): it works the preview and the order out here. A message older in
 * display order than the one the list holds changes neither, and the room's time never goes back (the server
 * orders by arrival, which a message's own time does not pass but by the clock's skew). The counts are `counts`'
 * for the room.
 */
export function withNewest(
	list: RoomSummary[],
	roomId: string,
	message: ChatMessage,
	counts: (room: RoomSummary) => { unread: number; mentions: number },
): RoomSummary | undefined {
	const room = list.find((r) => r.id === roomId);
	if (!room || message.status === 'failed') return undefined;
	const known = room.lastMessage;
	const content = message.deleted ? null : message.content;
	const order = known ? compareEvents(message, known) : 1;
	if (order < 0 || (order === 0 && known?.content === content)) return undefined;
	const activityAt =
		Date.parse(message.createdAt) > Date.parse(room.activityAt) ? message.createdAt : room.activityAt;
	const senderName =
		room.members.find((m) => m.id === message.senderId)?.name ??
		(known?.senderId === message.senderId ? known.senderName : null);
	return {
		...room,
		// As counted on the device (`countsOf`): what the list keeps for the next start shows them.
		...counts(room),
		activityAt,
		lastMessage: {
			clientMsgId: message.clientMsgId,
			senderId: message.senderId,
			senderName,
			content,
			createdAt: message.createdAt,
		},
	};
}

/** What the list needs of a room's open store to count its unread messages itself. */
export interface StoreCounts {
	localReady: boolean;
	metaReady: boolean;
	synced: boolean;
	reads: { unreadCount: number; mentionCount: number; known: boolean; covers: boolean };
}

/**
 * A room's unread messages and mentions as the list shows them. The room on screen counts against the read
 * position this device moves as the user reads (the server's count follows a moment later); another open room,
 * once synced, from its document, which holds every message the moment it is relayed (protocol 6: the server
 * sends no counts after a message there). When the device holds fewer messages than are unread, the server's
 * count (from before) is the floor. Otherwise the server's.
 */
export function countsOf(
	room: RoomSummary,
	store: StoreCounts | undefined,
	viewing: boolean,
): { unread: number; mentions: number } {
	const server = { unread: room.unread, mentions: room.mentions };
	if (!store?.localReady || !store.metaReady) return server;
	const local = { unread: store.reads.unreadCount, mentions: store.reads.mentionCount };
	if (viewing || (store.synced && store.reads.known && store.reads.covers)) return local;
	if (!store.synced || !store.reads.known) return server;
	return {
		unread: Math.max(server.unread, local.unread),
		mentions: Math.max(server.mentions, local.mentions),
	};
}

/**
 * A room the API just returned (a `Room`, or already a `RoomState`) as a list entry. What the channel said about
 * it (`existing`: activity, unread counts, settings) is kept; a room new to this device starts at the top.
 */
export function summaryOf(
	room: {
		id: string;
		name: string | null;
		topic?: string | null;
		isGroup: boolean;
		members: (Omit<RoomSummary['members'][number], 'online'> & { online?: boolean })[];
	},
	existing: RoomSummary | undefined,
	userId: string | undefined,
): RoomSummary {
	// The HTTP API does not say who is online: what the channel said last stays.
	const online = (m: { id: string; online?: boolean }) =>
		m.online ?? existing?.members.find((e) => e.id === m.id)?.online ?? false;
	const full = roomState.safeParse(room);
	if (full.success)
		return {
			...full.data,
			members: full.data.members.map((m, i) => ({ ...m, online: online(room.members[i]!) })),
		};
	const me = room.members.find((m) => m.id === userId);
	return {
		lastMessage: null,
		activityAt: new Date().toISOString(),
		unread: 0,
		mentions: 0,
		notify: 'all',
		...existing,
		id: room.id,
		name: room.name,
		topic: room.topic !== undefined ? room.topic : (existing?.topic ?? null),
		isGroup: room.isGroup,
		members: room.members.map((m) => ({ ...m, online: online(m) })),
		role: me?.role ?? existing?.role ?? 'member',
	};
}

/**
 * Search on this device: the messages of the rooms it holds that contain every word (deleted and failed ones
 * never), newest first, with snippets marked like the server's.
 */
export function searchMessages(
	rooms: Iterable<{ roomId: string; messages: readonly ChatMessage[] }>,
	query: string,
	limit: number,
): LocalResult[] {
	const words = searchWords(query);
	if (words.length === 0) return [];
	const results: LocalResult[] = [];
	for (const room of rooms) {
		for (const m of room.messages) {
			if (m.deleted || m.status === 'failed') continue;
			const text = m.content.toLowerCase();
			if (!words.every((w) => text.includes(w))) continue;
			results.push({
				roomId: room.roomId,
				clientMsgId: m.clientMsgId,
				senderId: m.senderId,
				createdAt: m.createdAt,
				snippet: localSnippet(m.content, words),
			});
		}
	}
	return results.sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt)).slice(0, limit);
}

/** The list with one person's `online` set in every room they are in (a `presence` message of the channel). */
export function withPresence(list: RoomSummary[], userId: string, online: boolean): RoomSummary[] {
	return list.map((room) =>
		room.members.some((m) => m.id === userId && m.online !== online)
			? { ...room, members: room.members.map((m) => (m.id === userId ? { ...m, online } : m)) }
			: room,
	);
}

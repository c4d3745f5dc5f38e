import { localSnippet, searchWords } from './format.ts';
import type { ChatMessage } from './room-model.ts';
import type { RoomSummary } from './schemas.ts';
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

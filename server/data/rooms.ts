import type { Queryable } from '../db/index.ts';
import type { MessageRow, Role, Room, RoomMember } from '#protocol/api.ts';
import type { AttachmentRef } from '#protocol/events.ts';
import type { NotifyLevel, RoomState } from '#protocol/user-channel.ts';
import { storedRefs } from './messages.ts';

export function directKey(a: string, b: string): string {
	return [a, b].sort().join(':');
}

export async function insert(
	db: Queryable,
	room: { id: string; name: string | null; isGroup: boolean; directKey: string | null; createdBy: string },
): Promise<boolean> {
	const { rowCount } = await db.query(
		`INSERT INTO rooms (id, name, is_group, direct_key, created_by) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (direct_key) DO NOTHING`,
		[room.id, room.name, room.isGroup, room.directKey, room.createdBy],
	);
	return rowCount === 1;
}

export async function findDirect(db: Queryable, key: string): Promise<string | null> {
	const { rows } = await db.query<{ id: string }>('SELECT id FROM rooms WHERE direct_key = $1', [key]);
	return rows[0]?.id ?? null;
}

export async function addMembers(db: Queryable, roomId: string, members: { userId: string; role: Role }[]) {
	if (members.length === 0) return;
	await db.query(
		`INSERT INTO memberships (room_id, user_id, role)
		 SELECT $1, m.user_id, m.role FROM unnest($2::uuid[], $3::text[]) AS m (user_id, role)
		 ON CONFLICT (room_id, user_id) DO NOTHING`,
		[roomId, members.map((m) => m.userId), members.map((m) => m.role)],
	);
}

export async function removeMember(db: Queryable, roomId: string, userId: string): Promise<boolean> {
	const { rowCount } = await db.query('DELETE FROM memberships WHERE room_id = $1 AND user_id = $2', [
		roomId,
		userId,
	]);
	return rowCount > 0;
}

/** The caller's role in a room, or null when they are not a member (or the room does not exist). */
export async function roleOf(db: Queryable, roomId: string, userId: string): Promise<Role | null> {
	const { rows } = await db.query<{ role: Role }>(
		'SELECT role FROM memberships WHERE room_id = $1 AND user_id = $2',
		[roomId, userId],
	);
	return rows[0]?.role ?? null;
}

/** When the room was created (ms since the epoch), or null when there is no such room. */
export async function createdAt(db: Queryable, roomId: string): Promise<number | null> {
	const { rows } = await db.query<{ created_at: Date | string }>(
		'SELECT created_at FROM rooms WHERE id = $1',
		[roomId],
	);
	return rows[0] ? new Date(rows[0].created_at).getTime() : null;
}

export async function exists(db: Queryable, roomId: string): Promise<boolean> {
	const { rows } = await db.query('SELECT 1 FROM rooms WHERE id = $1', [roomId]);
	return rows.length > 0;
}

interface RoomRowWithMembers {
	id: string;
	name: string | null;
	topic: string | null;
	is_group: boolean;
	members: RoomMember[] | string;
}

/** A room's members as JSON, in the order they joined (`r`: the room). */
const membersOf = `(SELECT coalesce(json_agg(json_build_object('id', u.id, 'name', u.name, 'role', m.role, 'lastSeen', u.last_seen_at) ORDER BY m.joined_at, u.name), '[]')
		 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.room_id = r.id)`;

const roomSelect = `
	SELECT r.id, r.name, r.topic, r.is_group, ${membersOf} AS members
	FROM rooms r`;

function toRoom(row: RoomRowWithMembers): Room {
	const members = typeof row.members === 'string' ? (JSON.parse(row.members) as RoomMember[]) : row.members;
	return { id: row.id, name: row.name, topic: row.topic, isGroup: row.is_group, members };
}

export async function get(db: Queryable, roomId: string): Promise<Room | null> {
	const { rows } = await db.query<RoomRowWithMembers>(`${roomSelect} WHERE r.id = $1`, [roomId]);
	return rows[0] ? toRoom(rows[0]) : null;
}

/** A room as its member's channel and `GET /api/rooms` report it (`lastMessage` as a full mirrored row). */
export type RoomListItem = Omit<RoomState, 'lastMessage' | 'members'> & {
	/** Who is online is the user channel's to say (server/collab/user-channels.ts), not the database's. */
	members: RoomMember[];
	lastMessage: MessageRow | null;
};

/** A member's level, or the default: every message of a 1:1 room, mentions in a group (`me`: the membership). */
const effectiveNotify = `coalesce(me.notify, CASE WHEN r.is_group THEN 'mentions' ELSE 'all' END)`;

/** Unread counts stop here: the list shows "999+", and counting further would scan a whole room. */
const UNREAD_CAP = 999;

/**
 * The POSIX regex (case-insensitive) that finds an @mention of the member `me` (SQL): the same rule as
 * `mentionsName` in src/lib/protocol/user-channel.ts (a name may end a sentence with `.` or `-`). Names hold only
 * letters, digits, `_`, `.` and `-`, so only `.` needs escaping.
 */
const mentionOfMe = `'(^|[^A-Za-z0-9_@])@' || replace(mu.name, '.', '\\.') || '[.-]*([^A-Za-z0-9_.-]|$)'`;

/**
 * The caller's rooms, most recently active first: members, the caller's role and notification level, the newest
 * message, and the caller's unread and mention counts after their read position.
 */
export async function listFor(db: Queryable, userId: string): Promise<RoomListItem[]> {
	return (await listsFor(db, [userId])).get(userId.toLowerCase()) ?? [];
}

/** `listFor` of several users in one statement: each user's list (keyed in lower case), in the same order. */
export async function listsFor(db: Queryable, userIds: string[]): Promise<Map<string, RoomListItem[]>> {
	const lists = new Map(userIds.map((id) => [id.toLowerCase(), [] as RoomListItem[]]));
	for (const { userId, item } of await listForMembers(db, userIds, undefined)) lists.get(userId)?.push(item);
	return lists;
}

/**
 * One room as each of several of its members sees it (their role, level and counts), in one statement: what the
 * user channels of one node re-read after a message, instead of one read per member. Members who are not (or no
 * longer) in the room are missing from the answer.
 */
export async function roomForMembers(db: Queryable, roomId: string, userIds: string[]): Promise<RoomViews> {
	return viewsOf(await listForMembers(db, userIds, roomId));
}

/**
 * `roomForMembers` without the room's members (`members` is empty): what a `room-activity` needs after a message
 * or a read, when nothing but the newest message and the counts changed.
 */
export async function activityForMembers(
	db: Queryable,
	roomId: string,
	userIds: string[],
): Promise<RoomViews> {
	return viewsOf(await listForMembers(db, userIds, roomId, false));
}

/** A message's place in display order: `created_at`, then `client_msg_id` (as read positions are kept). */
export interface MessagePosition {
	at: string;
	clientMsgId: string;
}

/** One room as each of several members sees it, and its newest message in display order (null: none). */
export interface RoomViews {
	views: Map<string, RoomListItem>;
	newest: MessagePosition | null;
}

function viewsOf(rows: { userId: string; item: RoomListItem; newest: MessagePosition | null }[]): RoomViews {
	return { views: new Map(rows.map(({ userId, item }) => [userId, item])), newest: rows[0]?.newest ?? null };
}

async function listForMembers(
	db: Queryable,
	userIds: string[],
	roomId: string | undefined,
	withMembers = true,
): Promise<{ userId: string; item: RoomListItem; newest: MessagePosition | null }[]> {
	const [sql, prepared] =
		roomId === undefined
			? [roomsOfUserSql, 'rooms_of_user']
			: withMembers
				? [roomOfMembersSql, 'room_of_members']
				: [activityOfMembersSql, 'activity_of_members'];
	const { rows } = await db.query<RoomListRow>(
		sql,
		roomId === undefined ? [userIds] : [userIds, roomId],
		// Run on every connect and after every message: planning it each time cost as much as running it.
		{ prepared },
	);
	return rows.map((row) => ({
		userId: row.for_user,
		item: toListItem(row),
		newest:
			row.newest_at === null || row.newest_id === null
				? null
				: { at: new Date(row.newest_at).toISOString(), clientMsgId: row.newest_id },
	}));
}

type RoomListRow = RoomRowWithMembers & {
	for_user: string;
	role: Role;
	notify: NotifyLevel;
	last: Record<string, unknown> | string | null;
	activity_at: Date | string;
	unread: number | string;
	mentions: number | string;
	/** The room's newest message in display order (one room's statements only). */
	newest_at: Date | string | null;
	newest_id: string | null;
};

/**
 * Rooms as members see them (`$1`: the members): the room's own parts (members, newest message) once per room,
 * then each member's role, level and counts. Unread messages are found from the read position on, through
 * (room_id, created_at), not by scanning the room's history. One text for a room (`$2`) and one for all of a
 * user's rooms, each with its own plan.
 */
function roomListSql(oneRoom: boolean, withMembers = true): string {
	return `WITH r AS MATERIALIZED (
			SELECT r.id, r.name, r.topic, r.is_group, r.created_at, ${withMembers ? membersOf : `'[]'::json`} AS members,
				lm.last, lm.received_at, ${oneRoom ? 'nm.newest_at, nm.newest_id' : 'NULL::timestamptz AS newest_at, NULL::uuid AS newest_id'}
			FROM rooms r
			LEFT JOIN LATERAL (
				SELECT json_build_object(
					'seq', msg.seq, 'roomId', msg.room_id, 'clientMsgId', msg.client_msg_id, 'kind', msg.kind,
					'senderId', msg.sender_id, 'senderName', su.name,
					'content', CASE WHEN msg.deleted_at IS NULL THEN msg.content END, 'replyToId', msg.reply_to,
					'targetId', msg.target_id, 'createdAt', msg.created_at, 'receivedAt', msg.received_at,
					'attachments', CASE WHEN msg.deleted_at IS NULL THEN msg.attachments END) AS last,
					msg.received_at
				FROM messages msg LEFT JOIN users su ON su.id = msg.sender_id
				WHERE msg.room_id = r.id AND msg.kind = 'message' ORDER BY msg.seq DESC LIMIT 1
			) lm ON true
			${oneRoom ? newestOf : ''}
			WHERE ${oneRoom ? 'r.id = $2' : 'r.id IN (SELECT room_id FROM memberships WHERE user_id = ANY($1::uuid[]))'}
		 )
		 SELECT r.id, r.name, r.topic, r.is_group, r.members, r.newest_at, r.newest_id, me.user_id AS for_user, me.role,
			${effectiveNotify} AS notify, r.last, coalesce(r.received_at, greatest(r.created_at, me.joined_at)) AS activity_at,
			coalesce(n.unread, 0) AS unread, coalesce(n.mentions, 0) AS mentions
		 FROM r
		 JOIN memberships me ON me.room_id = r.id AND me.user_id = ANY($1::uuid[])
		 JOIN users mu ON mu.id = me.user_id
		 LEFT JOIN read_positions rp ON rp.room_id = r.id AND rp.user_id = me.user_id
		 LEFT JOIN LATERAL (
			SELECT count(*) AS unread, count(*) FILTER (WHERE u.content ~* (${mentionOfMe})) AS mentions FROM (
				SELECT msg.content FROM messages msg
				WHERE msg.room_id = r.id AND msg.created_at >= coalesce(rp.last_read_at, '-infinity')
					AND msg.kind = 'message' AND msg.deleted_at IS NULL AND msg.sender_id <> me.user_id
					AND (rp.room_id IS NULL OR (msg.created_at, msg.client_msg_id) > (rp.last_read_at, rp.last_read_id))
				LIMIT ${UNREAD_CAP}
			) u
		 ) n ON true
		 ORDER BY activity_at DESC`;
}

/** A room's newest message in display order (`r`: the room), the end of every member's unread messages. */
const newestOf = `LEFT JOIN LATERAL (
				SELECT created_at AS newest_at, client_msg_id AS newest_id FROM messages
				WHERE room_id = r.id AND kind = 'message' ORDER BY created_at DESC, client_msg_id DESC LIMIT 1
			) nm ON true`;

const roomsOfUserSql = roomListSql(false);
const roomOfMembersSql = roomListSql(true);
const activityOfMembersSql = roomListSql(true, false);

function toListItem(row: RoomListRow): RoomListItem {
	const last = typeof row.last === 'string' ? (JSON.parse(row.last) as Record<string, unknown>) : row.last;
	// A message's files, like the history API's rows: absent when there are none.
	const { attachments, ...lastFields } = last ?? {};
	return {
		...toRoom(row),
		role: row.role,
		notify: row.notify,
		activityAt: new Date(row.activity_at).toISOString(),
		unread: Number(row.unread),
		mentions: Number(row.mentions),
		lastMessage: last
			? ({
					...lastFields,
					...(Array.isArray(attachments) && attachments.length > 0
						? { attachments: storedRefs(attachments as AttachmentRef[]) }
						: {}),
					seq: Number(last.seq),
					createdAt: new Date(String(last.createdAt)).toISOString(),
					receivedAt: new Date(String(last.receivedAt)).toISOString(),
				} as MessageRow)
			: null,
	};
}

/** Changes a member's role; false when they are not a member. */
export async function setRole(db: Queryable, roomId: string, userId: string, role: Role): Promise<boolean> {
	const { rowCount } = await db.query(
		'UPDATE memberships SET role = $3 WHERE room_id = $1 AND user_id = $2',
		[roomId, userId, role],
	);
	return rowCount > 0;
}

/** Sets a room's name and topic (each when given; an empty topic removes it). */
export async function setDetails(
	db: Queryable,
	roomId: string,
	details: { name?: string; topic?: string },
): Promise<void> {
	await db.query(
		`UPDATE rooms SET name = coalesce($2, name), topic = CASE WHEN $3::text IS NULL THEN topic ELSE nullif($3, '') END
		 WHERE id = $1`,
		[roomId, details.name ?? null, details.topic ?? null],
	);
}

/** Sets how a room notifies one member; false when they are not a member. */
export async function setNotify(
	db: Queryable,
	roomId: string,
	userId: string,
	level: NotifyLevel,
): Promise<boolean> {
	const { rowCount } = await db.query(
		'UPDATE memberships SET notify = $3 WHERE room_id = $1 AND user_id = $2',
		[roomId, userId, level],
	);
	return rowCount > 0;
}

/** Members of a room with their names and notification levels (who hears about a message). */
export async function audience(
	db: Queryable,
	roomId: string,
): Promise<{
	isGroup: boolean;
	name: string | null;
	members: { id: string; name: string; notify: NotifyLevel }[];
}> {
	const { rows } = await db.query<{
		is_group: boolean;
		room_name: string | null;
		id: string;
		name: string;
		notify: NotifyLevel;
	}>(
		`SELECT r.is_group, r.name AS room_name, u.id, u.name, ${effectiveNotify.replace('me.', 'm.')} AS notify
		 FROM rooms r JOIN memberships m ON m.room_id = r.id JOIN users u ON u.id = m.user_id WHERE r.id = $1`,
		[roomId],
		{ prepared: 'chat_audience' },
	);
	return {
		isGroup: rows[0]?.is_group ?? true,
		name: rows[0]?.room_name ?? null,
		members: rows.map((r) => ({ id: r.id, name: r.name, notify: r.notify })),
	};
}

/**
 * Before an account is deleted, or its owner leaves a group (`roomId`): each group it owns passes to its
 * longest-standing admin, else its longest-standing member; a group with nobody else in it is deleted. Returns the
 * new owners and the deleted rooms.
 */
export async function handOver(
	db: Queryable,
	userId: string,
	roomId: string | null = null,
): Promise<{ owners: { roomId: string; userId: string }[]; deleted: string[] }> {
	const { rows: owners } = await db.query<{ room_id: string; user_id: string }>(
		`UPDATE memberships m SET role = 'owner'
		 FROM (
			SELECT DISTINCT ON (o.room_id) o.room_id, heir.user_id
			FROM memberships o JOIN rooms r ON r.id = o.room_id AND r.is_group
			JOIN memberships heir ON heir.room_id = o.room_id AND heir.user_id <> o.user_id
			WHERE o.user_id = $1 AND o.role = 'owner' AND ($2::uuid IS NULL OR o.room_id = $2)
				AND NOT EXISTS (SELECT 1 FROM memberships other WHERE other.room_id = o.room_id AND other.role = 'owner' AND other.user_id <> o.user_id)
			ORDER BY o.room_id, (heir.role = 'admin') DESC, (heir.role = 'member') DESC, heir.joined_at
		 ) h
		 WHERE m.room_id = h.room_id AND m.user_id = h.user_id
		 RETURNING m.room_id, m.user_id`,
		[userId, roomId],
	);
	const { rows: deleted } = await db.query<{ id: string }>(
		`DELETE FROM rooms r WHERE r.is_group AND EXISTS (SELECT 1 FROM memberships m WHERE m.room_id = r.id AND m.user_id = $1)
			AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.room_id = r.id AND m.user_id <> $1)
			AND ($2::uuid IS NULL OR r.id = $2)
		 RETURNING r.id`,
		[userId, roomId],
	);
	return {
		owners: owners.map((o) => ({ roomId: o.room_id, userId: o.user_id })),
		deleted: deleted.map((d) => d.id),
	};
}

/** The rooms a user is in (for telling their fellow members when the account goes). */
export async function idsOf(db: Queryable, userId: string): Promise<string[]> {
	const { rows } = await db.query<{ room_id: string }>('SELECT room_id FROM memberships WHERE user_id = $1', [
		userId,
	]);
	return rows.map((r) => r.room_id);
}

import type { Queryable } from '../db/index.ts';
import type { MessageRow, Role, Room, RoomMember } from '../../src/lib/protocol/api.ts';

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

/** The caller's role and the room's kind, or null when they are not a member. */
export async function membershipOf(
	db: Queryable,
	roomId: string,
	userId: string,
): Promise<{ role: Role; isGroup: boolean } | null> {
	const { rows } = await db.query<{ role: Role; is_group: boolean }>(
		'SELECT m.role, r.is_group FROM memberships m JOIN rooms r ON r.id = m.room_id WHERE m.room_id = $1 AND m.user_id = $2',
		[roomId, userId],
	);
	return rows[0] ? { role: rows[0].role, isGroup: rows[0].is_group } : null;
}

export async function exists(db: Queryable, roomId: string): Promise<boolean> {
	const { rows } = await db.query('SELECT 1 FROM rooms WHERE id = $1', [roomId]);
	return rows.length > 0;
}

interface RoomRowWithMembers {
	id: string;
	name: string | null;
	is_group: boolean;
	members: RoomMember[] | string;
}

const roomSelect = `
	SELECT r.id, r.name, r.is_group,
		(SELECT coalesce(json_agg(json_build_object('id', u.id, 'name', u.name, 'role', m.role, 'lastSeen', u.last_seen_at) ORDER BY m.joined_at, u.name), '[]')
		 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.room_id = r.id) AS members
	FROM rooms r`;

function toRoom(row: RoomRowWithMembers): Room {
	const members = typeof row.members === 'string' ? (JSON.parse(row.members) as RoomMember[]) : row.members;
	return { id: row.id, name: row.name, isGroup: row.is_group, members };
}

export async function get(db: Queryable, roomId: string): Promise<Room | null> {
	const { rows } = await db.query<RoomRowWithMembers>(`${roomSelect} WHERE r.id = $1`, [roomId]);
	return rows[0] ? toRoom(rows[0]) : null;
}

/** The caller's rooms, most recently active first, each with its last mirrored message. */
export async function listFor(
	db: Queryable,
	userId: string,
): Promise<(Room & { lastMessage: MessageRow | null })[]> {
	const { rows } = await db.query<RoomRowWithMembers & { last: Record<string, unknown> | string | null }>(
		`${roomSelect.replace('AS members', 'AS members, lm.last')}
		 JOIN memberships me ON me.room_id = r.id AND me.user_id = $1
		 LEFT JOIN LATERAL (
			SELECT json_build_object(
				'seq', msg.seq, 'roomId', msg.room_id, 'clientMsgId', msg.client_msg_id, 'kind', msg.kind,
				'senderId', msg.sender_id, 'senderName', su.name,
				'content', CASE WHEN msg.deleted_at IS NULL THEN msg.content END, 'replyToId', msg.reply_to,
				'targetId', msg.target_id, 'createdAt', msg.created_at, 'receivedAt', msg.received_at) AS last
			FROM messages msg LEFT JOIN users su ON su.id = msg.sender_id
			WHERE msg.room_id = r.id AND msg.kind = 'message' ORDER BY msg.seq DESC LIMIT 1
		 ) lm ON true
		 ORDER BY coalesce((lm.last ->> 'receivedAt')::timestamptz, r.created_at) DESC`,
		[userId],
	);
	return rows.map((row) => {
		const last = typeof row.last === 'string' ? (JSON.parse(row.last) as Record<string, unknown>) : row.last;
		return {
			...toRoom(row),
			lastMessage: last
				? ({
						...last,
						seq: Number(last.seq),
						createdAt: new Date(String(last.createdAt)).toISOString(),
						receivedAt: new Date(String(last.receivedAt)).toISOString(),
					} as MessageRow)
				: null,
		};
	});
}

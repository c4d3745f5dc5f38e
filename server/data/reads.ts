import type { MemberReadPosition } from '#protocol/stateless.ts';
import type { Queryable } from '../db/index.ts';

/** A member's read position in a room, as `advanceAll` takes and returns it. */
export interface RoomReadPosition extends MemberReadPosition {
	roomId: string;
}

/** A row of read_positions, as both statements return it. */
interface PositionRow {
	room_id: string;
	user_id: string;
	last_read_at: Date;
	last_read_id: string;
}

const toPosition = (r: PositionRow): RoomReadPosition => ({
	roomId: r.room_id,
	userId: r.user_id,
	at: new Date(r.last_read_at).toISOString(),
	clientMsgId: r.last_read_id,
});

/**
 * Moves members' read positions forward, any number of rooms and members in one statement (one per room and
 * member); a position at or before the stored one changes nothing (another device got further already). Returns
 * the positions that moved.
 */
export async function advanceAll(db: Queryable, positions: RoomReadPosition[]): Promise<RoomReadPosition[]> {
	if (positions.length === 0) return [];
	const { rows } = await db.query<PositionRow>(
		`INSERT INTO read_positions (room_id, user_id, last_read_at, last_read_id)
		 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::uuid[])
		 ON CONFLICT (room_id, user_id) DO UPDATE
		   SET last_read_at = excluded.last_read_at, last_read_id = excluded.last_read_id, updated_at = now()
		   WHERE (excluded.last_read_at, excluded.last_read_id) > (read_positions.last_read_at, read_positions.last_read_id)
		 RETURNING room_id, user_id, last_read_at, last_read_id`,
		[
			positions.map((p) => p.roomId),
			positions.map((p) => p.userId),
			positions.map((p) => p.at),
			positions.map((p) => p.clientMsgId),
		],
	);
	return rows.map(toPosition);
}

/**
 * The read positions of the rooms' current members (`$1`: the rooms). Both tables are narrowed to the rooms by
 * their keys: with the rooms on one side only, Postgres hashed every membership of every room for each call (1.8
 * ms at 16,000 memberships, against 0.09).
 */
export const listsSql = `SELECT p.room_id, p.user_id, p.last_read_at, p.last_read_id FROM read_positions p
	JOIN memberships m ON m.room_id = p.room_id AND m.user_id = p.user_id
	WHERE p.room_id = ANY($1::uuid[]) AND m.room_id = ANY($1::uuid[])`;

/** The read positions of each room's current members, for several rooms in one statement (keyed in lower case). */
export async function lists(db: Queryable, roomIds: string[]): Promise<Map<string, MemberReadPosition[]>> {
	const { rows } = await db.query<PositionRow>(listsSql, [roomIds], { prepared: 'chat_read_lists' });
	const byRoom = new Map(roomIds.map((id) => [id.toLowerCase(), [] as MemberReadPosition[]]));
	for (const r of rows) {
		const { roomId, ...position } = toPosition(r);
		byRoom.get(roomId)?.push(position);
	}
	return byRoom;
}

import type { MemberReadPosition } from '#protocol/stateless.ts';
import type { Queryable } from '../db/index.ts';

/** A member's read position in a room, as `advanceAll` takes and returns it. */
export interface RoomReadPosition extends MemberReadPosition {
	roomId: string;
}

/**
 * Moves members' read positions forward, any number of rooms and members in one statement (one per room and
 * member); a position at or before the stored one changes nothing (another device got further already). Returns
 * the positions that moved.
 */
export async function advanceAll(db: Queryable, positions: RoomReadPosition[]): Promise<RoomReadPosition[]> {
	if (positions.length === 0) return [];
	const { rows } = await db.query<{
		room_id: string;
		user_id: string;
		last_read_at: Date;
		last_read_id: string;
	}>(
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
	return rows.map((r) => ({
		roomId: r.room_id,
		userId: r.user_id,
		at: new Date(r.last_read_at).toISOString(),
		clientMsgId: r.last_read_id,
	}));
}

/** The read positions of a room's current members. */
export async function list(db: Queryable, roomId: string): Promise<MemberReadPosition[]> {
	const { rows } = await db.query<{ user_id: string; last_read_at: Date; last_read_id: string }>(
		`SELECT p.user_id, p.last_read_at, p.last_read_id FROM read_positions p
		 JOIN memberships m ON m.room_id = p.room_id AND m.user_id = p.user_id
		 WHERE p.room_id = $1`,
		[roomId],
	);
	return rows.map((r) => ({
		userId: r.user_id,
		at: new Date(r.last_read_at).toISOString(),
		clientMsgId: r.last_read_id,
	}));
}

import type { MemberReadPosition } from '#protocol/stateless.ts';
import type { Queryable } from '../db/index.ts';

/**
 * Moves a member's read position forward; a position at or before the stored one changes nothing (another
 * device got further already). Returns whether it moved.
 */
export async function advance(db: Queryable, roomId: string, position: MemberReadPosition): Promise<boolean> {
	const { rows } = await db.query(
		`INSERT INTO read_positions (room_id, user_id, last_read_at, last_read_id) VALUES ($1, $2, $3, $4)
		 ON CONFLICT (room_id, user_id) DO UPDATE
		   SET last_read_at = excluded.last_read_at, last_read_id = excluded.last_read_id, updated_at = now()
		   WHERE (excluded.last_read_at, excluded.last_read_id) > (read_positions.last_read_at, read_positions.last_read_id)
		 RETURNING 1`,
		[roomId, position.userId, position.at, position.clientMsgId],
	);
	return rows.length > 0;
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

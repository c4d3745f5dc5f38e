import type { Queryable } from '../db/types.ts';
import { Lookups } from '../db/lookups.ts';
import type { Role } from '#protocol/api.ts';

/** Memberships by (room, user), null for none: the lookups of one turn answered by one `membershipsOf`. */
export type MembershipLookups = Lookups<
	{ roomId: string; userId: string },
	{ role: Role; isGroup: boolean } | null
>;

export function membershipLookups(db: Queryable): MembershipLookups {
	return new Lookups({
		find: (pairs) => membershipsOf(db, pairs),
		idOf: ({ roomId, userId }) => `${roomId} ${userId}`.toLowerCase(),
		missing: null,
	});
}

/**
 * The role of each given (room, user) pair (uuids) that is a membership, and the room's kind, keyed
 * `<roomId> <userId>` in lower case: one statement for many logins (Lookups gathers a turn's into one call).
 */
export async function membershipsOf(
	db: Queryable,
	pairs: { roomId: string; userId: string }[],
): Promise<Map<string, { role: Role; isGroup: boolean }>> {
	const { rows } = await db.query<{ id: string; role: Role; is_group: boolean }>(
		`SELECT m.room_id::text || ' ' || m.user_id::text AS id, m.role, r.is_group
		 FROM unnest($1::uuid[], $2::uuid[]) AS k (room_id, user_id)
		 JOIN memberships m ON m.room_id = k.room_id AND m.user_id = k.user_id
		 JOIN rooms r ON r.id = m.room_id`,
		[pairs.map((p) => p.roomId), pairs.map((p) => p.userId)],
		{ prepared: 'chat_memberships_of' },
	);
	return new Map(rows.map((r) => [r.id, { role: r.role, isGroup: r.is_group }]));
}

import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/index.ts';

/**
 * Refresh tokens, stored as hashes. Each login starts a family; each refresh revokes the presented
 * token and issues its successor in the same family.
 */
export async function insert(
	db: Queryable,
	row: { familyId?: string; userId: string; tokenHash: string; ttlDays: number },
): Promise<{ id: string; familyId: string }> {
	const id = randomUUID();
	const familyId = row.familyId ?? randomUUID();
	await db.query(
		`INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at)
		 VALUES ($1, $2, $3, $4, now() + make_interval(days => $5::int))`,
		[id, familyId, row.userId, row.tokenHash, row.ttlDays],
	);
	return { id, familyId };
}

export interface SessionRow {
	id: string;
	familyId: string;
	userId: string;
	expired: boolean;
	revoked: boolean;
}

/** Locks the token's row for the rest of the transaction, so two refreshes cannot both rotate it. */
export async function findForUpdate(db: Queryable, tokenHash: string): Promise<SessionRow | null> {
	const { rows } = await db.query<{
		id: string;
		family_id: string;
		user_id: string;
		expired: boolean;
		revoked: boolean;
	}>(
		`SELECT id, family_id, user_id, expires_at <= now() AS expired, revoked_at IS NOT NULL AS revoked
		 FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE`,
		[tokenHash],
	);
	const r = rows[0];
	return r
		? { id: r.id, familyId: r.family_id, userId: r.user_id, expired: r.expired, revoked: r.revoked }
		: null;
}

export async function revoke(db: Queryable, id: string, replacedBy?: string): Promise<void> {
	await db.query(
		'UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()), replaced_by = $2 WHERE id = $1',
		[id, replacedBy ?? null],
	);
}

export async function revokeFamily(db: Queryable, familyId: string): Promise<void> {
	await db.query('UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL', [
		familyId,
	]);
}

/** A session (a login's family of refresh tokens) is live while one of its tokens is neither revoked nor expired. */
export async function isLive(db: Queryable, familyId: string, userId: string): Promise<boolean> {
	const { rows } = await db.query(
		`SELECT 1 FROM refresh_tokens
		 WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now() LIMIT 1`,
		[familyId, userId],
	);
	return rows.length > 0;
}

/** Ends every session of a user but `exceptFamilyId`. Returns the families it ended. */
export async function revokeAllBut(
	db: Queryable,
	userId: string,
	exceptFamilyId: string | null,
): Promise<string[]> {
	const { rows } = await db.query<{ family_id: string }>(
		`UPDATE refresh_tokens SET revoked_at = now()
		 WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR family_id <> $2)
		 RETURNING family_id`,
		[userId, exceptFamilyId],
	);
	return [...new Set(rows.map((r) => r.family_id))];
}

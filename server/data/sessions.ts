import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/index.ts';
import { Lookups } from '../db/lookups.ts';

/**
 * Refresh tokens, stored as hashes. Each login starts a family; each refresh revokes the presented
 * token and issues its successor in the same family.
 */
export async function insert(
	db: Queryable,
	row: { familyId?: string; userId: string; tokenHash: string; ttlDays: number; device?: string | null },
): Promise<{ id: string; familyId: string }> {
	const id = randomUUID();
	const familyId = row.familyId ?? randomUUID();
	await db.query(
		`INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at, device)
		 VALUES ($1, $2, $3, $4, now() + make_interval(days => $5::int), $6)`,
		[id, familyId, row.userId, row.tokenHash, row.ttlDays, row.device ?? null],
	);
	return { id, familyId };
}

export interface SessionRow {
	id: string;
	familyId: string;
	userId: string;
	expired: boolean;
	revoked: boolean;
	/**
	 * Rotated less than `retrySeconds` ago into a token that was never used: the answer to that rotation was lost
	 * (a page left while its refresh was in flight), and this is the same client asking again.
	 */
	retry: boolean;
}

/** Locks the token's row for the rest of the transaction, so two refreshes cannot both rotate it. */
export async function findForUpdate(
	db: Queryable,
	tokenHash: string,
	/** How long after its rotation a token may be presented again (`retry`); 0: never. */
	retrySeconds = 0,
): Promise<SessionRow | null> {
	const { rows } = await db.query<{
		id: string;
		family_id: string;
		user_id: string;
		expired: boolean;
		revoked: boolean;
		retry: boolean;
	}>(
		`SELECT t.id, t.family_id, t.user_id, t.expires_at <= now() AS expired, t.revoked_at IS NOT NULL AS revoked,
			(t.replaced_by IS NOT NULL AND t.revoked_at > now() - make_interval(secs => $2)
				AND EXISTS (SELECT 1 FROM refresh_tokens s
					WHERE s.id = t.replaced_by AND s.revoked_at IS NULL AND s.expires_at > now())) AS retry
		 FROM refresh_tokens t WHERE t.token_hash = $1 FOR UPDATE`,
		[tokenHash, retrySeconds],
	);
	const r = rows[0];
	return r
		? {
				id: r.id,
				familyId: r.family_id,
				userId: r.user_id,
				expired: r.expired,
				revoked: r.revoked,
				retry: r.retry === true,
			}
		: null;
}

/** Ends the unused successor of a token presented again (`findForUpdate`'s `retry`): its answer was lost. */
export async function revokeSuccessor(db: Queryable, id: string): Promise<void> {
	await db.query(
		`UPDATE refresh_tokens SET revoked_at = now()
		 WHERE id = (SELECT replaced_by FROM refresh_tokens WHERE id = $1) AND revoked_at IS NULL`,
		[id],
	);
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

/**
 * Of the given sessions (uuids), the live ones, keyed `<sessionId> <userId>` in lower case. A session (a login's
 * family of refresh tokens) is live while one of its tokens is neither revoked nor expired.
 */
async function liveOf(
	db: Queryable,
	sessions: { sessionId: string; userId: string }[],
): Promise<Map<string, true>> {
	const { rows } = await db.query<{ id: string }>(
		`SELECT DISTINCT t.family_id::text || ' ' || t.user_id::text AS id
		 FROM unnest($1::uuid[], $2::uuid[]) AS k (family_id, user_id)
		 JOIN refresh_tokens t ON t.family_id = k.family_id AND t.user_id = k.user_id
		 WHERE t.revoked_at IS NULL AND t.expires_at > now()`,
		[sessions.map((s) => s.sessionId), sessions.map((s) => s.userId)],
	);
	return new Map(rows.map((r) => [r.id, true]));
}

/** Whether a session is live: the lookups of one turn of the event loop answered by one statement (see Lookups). */
export function liveness(db: Queryable): (sessionId: string, userId: string) => Promise<boolean> {
	const lookups = new Lookups<{ sessionId: string; userId: string }, boolean>({
		find: (keys) => liveOf(db, keys),
		idOf: ({ sessionId, userId }) => `${sessionId} ${userId}`.toLowerCase(),
		missing: false,
	});
	return (sessionId, userId) => lookups.get({ sessionId, userId });
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

/** A user's live sessions, most recently used first: when each began, was last refreshed, and from what. */
export async function listLive(
	db: Queryable,
	userId: string,
): Promise<{ id: string; device: string | null; createdAt: string; lastUsedAt: string }[]> {
	const { rows } = await db.query<{
		family_id: string;
		device: string | null;
		created_at: Date | string;
		last_used_at: Date | string;
	}>(
		`SELECT family_id, min(created_at) AS created_at, max(created_at) AS last_used_at,
			(array_agg(device ORDER BY created_at) FILTER (WHERE device IS NOT NULL))[1] AS device
		 FROM refresh_tokens WHERE user_id = $1
		 GROUP BY family_id
		 HAVING bool_or(revoked_at IS NULL AND expires_at > now())
		 ORDER BY max(created_at) DESC`,
		[userId],
	);
	return rows.map((r) => ({
		id: r.family_id,
		device: r.device,
		createdAt: new Date(r.created_at).toISOString(),
		lastUsedAt: new Date(r.last_used_at).toISOString(),
	}));
}

/** Ends one session of a user; false when it is not theirs or not live. */
export async function revokeOwnFamily(db: Queryable, userId: string, familyId: string): Promise<boolean> {
	const { rowCount } = await db.query(
		'UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL',
		[familyId, userId],
	);
	return rowCount > 0;
}

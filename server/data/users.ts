import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/index.ts';
import type { PublicUser } from '#protocol/api.ts';

export interface UserRecord extends PublicUser {
	passwordHash: string;
}

const UNIQUE_VIOLATION = '23505';

export class NameTakenError extends Error {
	readonly code = 'name_taken';
}

/** Inserts a user; a name that differs only in case from an existing one is taken. */
export async function create(db: Queryable, name: string, passwordHash: string): Promise<PublicUser> {
	const id = randomUUID();
	try {
		await db.query('INSERT INTO users (id, name, password_hash) VALUES ($1, $2, $3)', [
			id,
			name,
			passwordHash,
		]);
	} catch (error) {
		if ((error as { code?: string }).code === UNIQUE_VIOLATION)
			throw new NameTakenError(`name "${name}" is taken`);
		throw error;
	}
	return { id, name };
}

export async function findByName(db: Queryable, name: string): Promise<UserRecord | null> {
	const { rows } = await db.query<{ id: string; name: string; password_hash: string }>(
		'SELECT id, name, password_hash FROM users WHERE lower(name) = lower($1)',
		[name],
	);
	const row = rows[0];
	return row ? { id: row.id, name: row.name, passwordHash: row.password_hash } : null;
}

export async function findById(db: Queryable, id: string): Promise<PublicUser | null> {
	const { rows } = await db.query<PublicUser>('SELECT id, name FROM users WHERE id = $1', [id]);
	return rows[0] ?? null;
}

/** Users whose name starts with (then contains) `q`, for starting a chat. */
export async function search(
	db: Queryable,
	q: string,
	limit: number,
): Promise<(PublicUser & { lastSeen: string | null })[]> {
	const pattern = q.replace(/[\\%_]/g, (c) => `\\${c}`);
	const { rows } = await db.query<{ id: string; name: string; last_seen_at: Date | null }>(
		`SELECT id, name, last_seen_at FROM users
		 WHERE lower(name) LIKE lower($1) || '%' OR lower(name) LIKE '%' || lower($1) || '%'
		 ORDER BY (lower(name) LIKE lower($1) || '%') DESC, lower(name)
		 LIMIT $2`,
		[pattern, limit],
	);
	return rows.map((r) => ({ id: r.id, name: r.name, lastSeen: r.last_seen_at?.toISOString() ?? null }));
}

/** Marks users as seen now, in one statement. */
export async function touchLastSeen(db: Queryable, ids: string[]): Promise<void> {
	await db.query('UPDATE users SET last_seen_at = now() WHERE id = ANY($1::uuid[])', [ids]);
}

export async function existingIds(db: Queryable, ids: string[]): Promise<Set<string>> {
	if (ids.length === 0) return new Set();
	const { rows } = await db.query<{ id: string }>('SELECT id FROM users WHERE id = ANY($1::uuid[])', [ids]);
	return new Set(rows.map((r) => r.id));
}

/** The stored password hash of a user, or null when the account is gone. */
export async function passwordHashOf(db: Queryable, id: string): Promise<string | null> {
	const { rows } = await db.query<{ password_hash: string }>(
		'SELECT password_hash FROM users WHERE id = $1',
		[id],
	);
	return rows[0]?.password_hash ?? null;
}

export async function setPasswordHash(db: Queryable, id: string, passwordHash: string): Promise<void> {
	await db.query('UPDATE users SET password_hash = $2 WHERE id = $1', [id, passwordHash]);
}

/**
 * Deletes an account: its sessions, memberships, read positions and subscriptions go with it (ON DELETE CASCADE).
 * Its messages stay in their rooms; with no user behind their sender id they read as a deleted user's.
 */
export async function remove(db: Queryable, id: string): Promise<boolean> {
	const { rowCount } = await db.query('DELETE FROM users WHERE id = $1', [id]);
	return rowCount > 0;
}

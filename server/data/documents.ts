import type { Queryable } from '../db/index.ts';

/**
 * The durable form of a Yjs document: a compacted snapshot plus the append log of accepted updates.
 * Bytes travel as base64 through encode()/decode(): PGlite handles bytea parameters ~10× slower.
 */
export interface StoredDocument {
	snapshot: Uint8Array | null;
	updates: { id: number; update: Uint8Array }[];
}

const toBytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));
export const toB64 = (bytes: Uint8Array) =>
	Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

export async function load(db: Queryable, name: string): Promise<StoredDocument> {
	const snap = await db.query<{ state: string }>(
		"SELECT encode(state, 'base64') AS state FROM documents WHERE name = $1",
		[name],
	);
	const log = await db.query<{ id: string | number; update: string }>(
		"SELECT id, encode(update, 'base64') AS update FROM document_updates WHERE name = $1 ORDER BY id",
		[name],
	);
	return {
		snapshot: snap.rows[0] ? toBytes(snap.rows[0].state) : null,
		updates: log.rows.map((r) => ({ id: Number(r.id), update: toBytes(r.update) })),
	};
}

/**
 * Folds the append log into the snapshot under a per-document lock, so only one node compacts a
 * document at a time. `fold` merges the stored snapshot and updates into one new snapshot; only the
 * updates it saw are dropped, so an update appended meanwhile by another node survives.
 * Returns the number of updates folded.
 */
export async function compact(
	db: { transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> },
	name: string,
	fold: (stored: StoredDocument) => Uint8Array,
): Promise<number> {
	return db.transaction(async (tx) => {
		await tx.query("SELECT pg_advisory_xact_lock(hashtext('document:' || $1))", [name]);
		const stored = await load(tx, name);
		const last = stored.updates.at(-1);
		if (!last) return 0;
		const state = fold(stored);
		await tx.query(
			`INSERT INTO documents (name, state, updated_at) VALUES ($1, decode($2, 'base64'), now())
			 ON CONFLICT (name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
			[name, toB64(state)],
		);
		await tx.query('DELETE FROM document_updates WHERE name = $1 AND id <= $2', [name, last.id]);
		return stored.updates.length;
	});
}

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
	// One statement, so one view of the database: read as two, a compaction committing between them would
	// leave its folded updates in neither the snapshot read before it nor the log read after it.
	const { rows } = await db.query<{ id: string | number | null; data: string }>(
		`SELECT NULL::bigint AS id, encode(state, 'base64') AS data FROM documents WHERE name = $1
		 UNION ALL
		 SELECT id, encode(update, 'base64') FROM document_updates WHERE name = $1
		 ORDER BY id NULLS FIRST`,
		[name],
	);
	const snapshot = rows[0]?.id === null ? toBytes(rows[0].data) : null;
	return {
		snapshot,
		updates: rows.filter((r) => r.id !== null).map((r) => ({ id: Number(r.id), update: toBytes(r.data) })),
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
		if (stored.updates.length === 0) return 0;
		const state = fold(stored);
		await tx.query(
			`INSERT INTO documents (name, state, updated_at) VALUES ($1, decode($2, 'base64'), now())
			 ON CONFLICT (name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
			[name, toB64(state)],
		);
		// Exactly the updates folded, not every id up to the last: ids come from a sequence when a row is inserted,
		// so an append of another node that took a smaller id may commit after this read and before this delete.
		await tx.query('DELETE FROM document_updates WHERE name = $1 AND id = ANY($2::bigint[])', [
			name,
			stored.updates.map((u) => u.id),
		]);
		return stored.updates.length;
	});
}

/** Deletes a document's snapshot and log (its room was deleted). */
export async function remove(db: Queryable, name: string): Promise<void> {
	await db.query('DELETE FROM document_updates WHERE name = $1', [name]);
	await db.query('DELETE FROM documents WHERE name = $1', [name]);
}

import type { Readable } from 'node:stream';
import type { Db, Queryable } from '../db/index.ts';
import type { BlobStore } from './blob-store.ts';

/**
 * One blob can back many files (the same bytes sent twice, or an image that is also another's thumbnail), and
 * garbage collection deletes a blob once no attachment row names it. Two things race on a blob:
 *
 * - a finishing upload, which stores its bytes (`put` does nothing when the blob is there) and then records them
 *   on its row (`sha256`, `thumb_sha256`);
 * - the collector, which finds the blob unused and deletes it.
 *
 * Alone, the upload could find the blob there, the collector then find it unused and delete it, and the upload
 * record a file whose bytes are gone. So both take the blob's lock, a Postgres advisory lock on its hash held to
 * the end of a short transaction: the upload checks that every blob it names is (still) in the store and records
 * them in that transaction, the collector checks that no row names the blob and deletes it in its own. Whichever
 * comes second sees what the first did: the collector a row naming the blob (it keeps it), the upload a blob gone
 * (it stores it again, from its bytes still at hand, and tries once more). The slow part, sending the bytes to
 * the store, happens outside any transaction; inside are a lookup and a delete or an existence check.
 *
 * On PGlite (one connection) transactions run one at a time, which is the same exclusion.
 */

/** The first key of every blob lock (`pg_advisory_xact_lock(int, int)`: a key space of its own). */
const BLOB_LOCK_CLASS = 4_242_003;

/** Takes the locks of these blobs until the end of `tx`, in one order (two uploads never wait on each other). */
async function lockBlobs(tx: Queryable, hashes: string[]): Promise<void> {
	await tx.query(
		`SELECT pg_advisory_xact_lock($1, k) FROM (
		   SELECT DISTINCT hashtext(h) AS k FROM unnest($2::text[]) AS h ORDER BY k
		 ) AS keys`,
		[BLOB_LOCK_CLASS, hashes],
	);
}

export interface StoredBlob {
	hash: string;
	/** Its bytes again, for when it was collected after it was stored. */
	source: () => Readable;
}

/**
 * Records blobs already put in the store as used: `record` (which names them on a row) runs under their locks once
 * each is seen in the store. A blob the collector deleted in the meantime is stored again, up to `attempts` times.
 * Resolves what `record` resolved.
 */
export async function recordStored<T>(
	db: Db,
	store: BlobStore,
	blobs: StoredBlob[],
	record: (tx: Queryable) => Promise<T>,
	attempts = 3,
): Promise<T> {
	for (let attempt = 1; ; attempt++) {
		const missing: StoredBlob[] = [];
		const recorded = await db.transaction(async (tx) => {
			await lockBlobs(
				tx,
				blobs.map((b) => b.hash),
			);
			for (const blob of blobs) if ((await store.size(blob.hash)) === null) missing.push(blob);
			return missing.length === 0 ? { value: await record(tx) } : null;
		});
		if (recorded) return recorded.value;
		if (attempt >= attempts)
			throw new Error(`a stored file was deleted as unused ${attempts} times while it was being recorded`);
		for (const blob of missing) await store.put(blob.hash, blob.source);
	}
}

/**
 * Deletes the blob `hash` when no attachment row names it, as a file or a thumbnail. Resolves its size in bytes
 * when it was deleted, null when it is still used or was gone already.
 */
export async function deleteIfUnused(db: Db, store: BlobStore, hash: string): Promise<number | null> {
	return db.transaction(async (tx) => {
		await lockBlobs(tx, [hash]);
		// A statement after the lock: it sees a row that an upload recorded while holding it.
		const { rows } = await tx.query(
			'SELECT 1 FROM attachments WHERE sha256 = $1 OR thumb_sha256 = $1 LIMIT 1',
			[hash],
		);
		if (rows.length > 0) return null;
		const size = await store.size(hash);
		if (size === null) return null;
		await store.delete(hash);
		return size;
	});
}

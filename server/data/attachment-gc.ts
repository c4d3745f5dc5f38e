import type { Queryable } from '../db/index.ts';

/**
 * The queries of attachments' garbage collection (server/files/collect.ts). Each takes at most `limit` rows, so a
 * large backlog is worked through in short statements; each delete checks again what made its rows garbage, so a
 * message that arrived meanwhile keeps its file, and two collectors never both delete (or count) one row.
 * Indexes: migrations/0010_attachment_gc.sql.
 */

/** The blobs a deleted file used: its bytes and its thumbnail's. */
export interface FreedRow {
	sha256: string | null;
	thumb_sha256: string | null;
}

/** The ids of the files a message lists, as a JSON array of strings (indexed: migrations/0010_attachment_gc.sql). */
const IDS = "jsonb_path_query_array(m.attachments, '$[*].id')";
/**
 * The messages (not edits) that list some of the files `ids` (a text[]): one scan of the index for a whole batch.
 * A probe per file, with the file's id from a correlated subquery, would not use it (its planner cannot cost a
 * value it does not know) and would read every message with files, for each file.
 */
const listing = (ids: string, live: boolean) =>
	`${IDS} ?| ${ids}::text[] AND m.attachments IS NOT NULL AND m.kind = 'message'
	 ${live ? 'AND m.deleted_at IS NULL' : ''}`;
/** `m` lists the file `a` (and is of its room). */
const lists = `m.room_id = a.room_id AND ${IDS} ? a.id`;

/** Uploads never finished and started more than `graceSeconds` ago: deletes their rows, returns their ids. */
export async function deleteAbandoned(db: Queryable, graceSeconds: number, limit: number): Promise<string[]> {
	const { rows } = await db.query<{ id: string }>(
		`DELETE FROM attachments WHERE id IN (
		   SELECT id FROM attachments WHERE sha256 IS NULL AND created_at < now() - make_interval(secs => $1)
		   ORDER BY created_at LIMIT $2
		 ) AND sha256 IS NULL
		 RETURNING id`,
		[graceSeconds, limit],
	);
	return rows.map((r) => r.id);
}

/**
 * The next `limit` deleted messages that carried files (in order of `seq`, after `afterSeq`): the last one's seq,
 * how many there were, and the stored files of their rooms they list.
 */
export async function filesOfDeletedMessages(
	db: Queryable,
	afterSeq: number,
	limit: number,
): Promise<{ lastSeq: number; messages: number; ids: string[] }> {
	const { rows } = await db.query<{ seq: string | number; id: string | null }>(
		`SELECT d.seq, f.id FROM (
		   SELECT seq, room_id, attachments FROM messages
		   WHERE deleted_at IS NOT NULL AND attachments IS NOT NULL AND kind = 'message' AND seq > $1
		   ORDER BY seq LIMIT $2
		 ) AS d
		 CROSS JOIN LATERAL jsonb_array_elements(d.attachments) AS e (ref)
		 LEFT JOIN attachments f ON f.id = e.ref ->> 'id' AND f.room_id = d.room_id AND f.sha256 IS NOT NULL`,
		[afterSeq, limit],
	);
	const seqs = new Set(rows.map((r) => Number(r.seq)));
	return {
		lastSeq: Math.max(afterSeq, ...seqs),
		messages: seqs.size,
		ids: [...new Set(rows.flatMap((r) => (r.id ? [r.id] : [])))],
	};
}

/** The next `limit` stored files (by id, after `after`) completed more than `graceSeconds` ago. */
export async function storedBefore(
	db: Queryable,
	after: string,
	graceSeconds: number,
	limit: number,
): Promise<string[]> {
	const { rows } = await db.query<{ id: string }>(
		`SELECT id FROM attachments
		 WHERE id > $1 AND sha256 IS NOT NULL AND completed_at < now() - make_interval(secs => $2)
		 ORDER BY id LIMIT $3`,
		[after, graceSeconds, limit],
	);
	return rows.map((r) => r.id);
}

/** Of these files, the ones a message of their room lists (a live one when `live`). */
export async function listed(db: Queryable, ids: string[], live: boolean): Promise<Set<string>> {
	if (ids.length === 0) return new Set();
	const { rows } = await db.query<{ id: string }>(
		`SELECT DISTINCT a.id FROM attachments a JOIN messages m ON ${lists}
		 WHERE a.id = ANY($1::text[]) AND ${listing('$1', live)}`,
		[ids],
	);
	return new Set(rows.map((r) => r.id));
}

/** Deletes these stored files unless a live message lists them now (one arrived since they were looked at). */
export async function deleteUnlisted(db: Queryable, ids: string[]): Promise<FreedRow[]> {
	if (ids.length === 0) return [];
	const { rows } = await db.query<FreedRow>(
		`DELETE FROM attachments a WHERE a.id = ANY($1::text[]) AND a.sha256 IS NOT NULL
		   AND NOT EXISTS (SELECT 1 FROM messages m WHERE ${listing('$1', true)} AND ${lists})
		 RETURNING a.sha256, a.thumb_sha256`,
		[ids],
	);
	return rows;
}

/** Of these blobs, the ones no attachment row names (as its file or its thumbnail). */
export async function unusedBlobs(db: Queryable, hashes: string[]): Promise<string[]> {
	if (hashes.length === 0) return [];
	const { rows } = await db.query<{ h: string }>(
		`SELECT h FROM unnest($1::text[]) AS h
		 WHERE NOT EXISTS (SELECT 1 FROM attachments WHERE sha256 = h)
		   AND NOT EXISTS (SELECT 1 FROM attachments WHERE thumb_sha256 = h)`,
		[hashes],
	);
	return rows.map((r) => r.h);
}

/** Whether any attachment row exists (a blob store beside an empty table is not walked: see collect.ts). */
export async function anyAttachment(db: Queryable): Promise<boolean> {
	const { rows } = await db.query('SELECT 1 FROM attachments LIMIT 1');
	return rows.length > 0;
}

/**
 * Of these uploads in progress on a node, the ones to keep: not finished, or finished within the grace period
 * (its upload server is removing its bytes). Any other's row is gone (collected, or its room deleted) or long
 * complete: its bytes are left over.
 */
export async function uploadsToKeep(
	db: Queryable,
	ids: string[],
	graceSeconds: number,
): Promise<Set<string>> {
	if (ids.length === 0) return new Set();
	const { rows } = await db.query<{ id: string }>(
		`SELECT id FROM attachments WHERE id = ANY($1::text[])
		   AND (sha256 IS NULL OR completed_at > now() - make_interval(secs => $2))`,
		[ids, graceSeconds],
	);
	return new Set(rows.map((r) => r.id));
}

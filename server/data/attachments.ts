import type { Queryable } from '../db/index.ts';

/** An uploaded file (migrations/0007_attachments.sql, 0008_attachment_thumbs.sql); complete once `sha256` is set. */
export interface AttachmentRow {
	id: string;
	roomId: string;
	uploaderId: string;
	name: string;
	size: number;
	declaredType: string;
	mediaType: string | null;
	sha256: string | null;
	/** An image's size in pixels, as shown. */
	width: number | null;
	height: number | null;
	/** An image's thumbnail (a WebP blob of the same store) and its ThumbHash in base64. */
	thumbSha256: string | null;
	placeholder: string | null;
	completedAt: Date | null;
}

interface Row {
	id: string;
	room_id: string;
	uploader_id: string;
	name: string;
	size: string | number;
	declared_type: string;
	media_type: string | null;
	sha256: string | null;
	width: number | null;
	height: number | null;
	thumb_sha256: string | null;
	placeholder: string | null;
	completed_at: Date | string | null;
}

const fromRow = (row: Row): AttachmentRow => ({
	id: row.id,
	roomId: row.room_id,
	uploaderId: row.uploader_id,
	name: row.name,
	size: Number(row.size),
	declaredType: row.declared_type,
	mediaType: row.media_type,
	sha256: row.sha256,
	width: row.width,
	height: row.height,
	thumbSha256: row.thumb_sha256,
	placeholder: row.placeholder,
	completedAt: row.completed_at === null ? null : new Date(row.completed_at),
});

export async function insert(
	db: Queryable,
	a: { id: string; roomId: string; uploaderId: string; name: string; size: number; declaredType: string },
): Promise<void> {
	await db.query(
		`INSERT INTO attachments (id, room_id, uploader_id, name, size, declared_type)
		 VALUES ($1, $2, $3, $4, $5, $6)`,
		[a.id, a.roomId, a.uploaderId, a.name, a.size, a.declaredType],
	);
}

export async function get(db: Queryable, id: string): Promise<AttachmentRow | null> {
	const { rows } = await db.query<Row>('SELECT * FROM attachments WHERE id = $1', [id]);
	return rows[0] ? fromRow(rows[0]) : null;
}

/** What a user has stored or is uploading, in bytes: what counts against their quota. */
export async function bytesOf(db: Queryable, userId: string): Promise<number> {
	const { rows } = await db.query<{ total: string | number | null }>(
		'SELECT sum(size) AS total FROM attachments WHERE uploader_id = $1',
		[userId],
	);
	return Number(rows[0]?.total ?? 0);
}

/**
 * Every byte is in and stored as the blob `sha256` (an image's thumbnail as the blob `thumbSha256`). False when
 * the row is gone: the upload was collected as abandoned (or its room deleted) before its last byte came.
 */
export async function complete(
	db: Queryable,
	id: string,
	done: {
		sha256: string;
		size: number;
		mediaType: string;
		width: number | null;
		height: number | null;
		thumbSha256: string | null;
		placeholder: string | null;
	},
): Promise<boolean> {
	const { rowCount } = await db.query(
		`UPDATE attachments SET sha256 = $2, size = $3, media_type = $4, width = $5, height = $6, thumb_sha256 = $7,
		   placeholder = $8, completed_at = now()
		 WHERE id = $1`,
		[id, done.sha256, done.size, done.mediaType, done.width, done.height, done.thumbSha256, done.placeholder],
	);
	return rowCount > 0;
}

export async function remove(db: Queryable, id: string): Promise<void> {
	await db.query('DELETE FROM attachments WHERE id = $1', [id]);
}

/** The rows of these ids that exist, by id. */
export async function getMany(db: Queryable, ids: string[]): Promise<Map<string, AttachmentRow>> {
	if (ids.length === 0) return new Map();
	const { rows } = await db.query<Row>('SELECT * FROM attachments WHERE id = ANY($1::text[])', [ids]);
	return new Map(rows.map((row) => [row.id, fromRow(row)]));
}

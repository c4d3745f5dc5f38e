import type { Queryable } from '../db/index.ts';
import * as attachments from '../data/attachments.ts';
import * as messages from '../data/messages.ts';
import type { ExportRow, MessageRow } from '#protocol/api.ts';

export type ExportFormat = 'jsonl' | 'csv';

/** `attachments`, last so that the columns before it keep their places, is the JSONL's array as JSON text. */
export const csvHeader =
	'seq,room_id,client_msg_id,kind,sender_id,sender_name,content,reply_to_id,target_id,created_at,received_at,attachments\r\n';

/**
 * RFC 4180: a field with a comma, quote, CR or LF is quoted, and quotes inside are doubled. A text that a
 * spreadsheet would read as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a CR) gets a leading `'` first
 * and is quoted (OWASP's rule against CSV injection): the cell then shows the text, never computes it. JSONL
 * stays exact.
 */
export function csvField(value: string | number | null): string {
	if (value === null) return '';
	let s = String(value);
	const formula = typeof value === 'string' && /^[=+\-@\t\r]/.test(s);
	if (formula) s = `'${s}`;
	return formula || /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function toCsvLine(r: ExportRow): string {
	return (
		[
			r.seq,
			r.roomId,
			r.clientMsgId,
			r.kind,
			r.senderId,
			r.senderName,
			r.content,
			r.replyToId,
			r.targetId,
			r.createdAt,
			r.receivedAt,
			r.attachments ? JSON.stringify(r.attachments) : null,
		]
			.map(csvField)
			.join(',') + '\r\n'
	);
}

export function toJsonLine(r: ExportRow): string {
	return JSON.stringify(r) + '\n';
}

/** Where a member downloads a stored file (`GET /api/files/:id`), relative to the server. */
export const fileUrl = (id: string) => `/api/files/${id}`;

/**
 * History rows as exported: each file a message lists gains the SHA-256 of its stored bytes (from `attachments`,
 * one query for the batch, none when it has no files) and its download address.
 */
export async function exportRows(db: Queryable, rows: MessageRow[]): Promise<ExportRow[]> {
	const ids = rows.flatMap((r) => r.attachments?.map((a) => a.id) ?? []);
	if (ids.length === 0) return rows as ExportRow[];
	const stored = await attachments.getMany(db, [...new Set(ids)]);
	return rows.map((r) =>
		r.attachments
			? {
					...r,
					attachments: r.attachments.map((a) => ({
						id: a.id,
						name: a.name,
						size: a.size,
						mediaType: a.mediaType,
						sha256: stored.get(a.id)?.sha256 ?? null,
						url: fileUrl(a.id),
					})),
				}
			: (r as ExportRow),
	);
}

/**
 * A room's mirrored messages as export text, one batch of rows at a time (keyset pagination on seq):
 * memory stays constant whatever the room's size. `onRows` sees each batch before its text is passed on (progress,
 * and the CLI's `--with-files` copies the batch's files there); the next batch waits for it.
 */
export async function* exportRoom(
	db: Queryable,
	q: {
		roomId: string;
		format: ExportFormat;
		since?: string;
		until?: string;
		batchSize?: number;
		/** Deleted messages keep their content (an audit export); otherwise it is empty. */
		includeDeleted?: boolean;
	},
	onRows?: (rows: ExportRow[]) => void | Promise<void>,
): AsyncGenerator<string> {
	// 200 rows per query: larger batches leave more garbage between collections (docs/component-benchmarks.md).
	const limit = q.batchSize ?? 200;
	const line = q.format === 'csv' ? toCsvLine : toJsonLine;
	if (q.format === 'csv') yield csvHeader;
	let afterSeq = 0;
	for (;;) {
		const rows = await messages.batchAfter(db, {
			roomId: q.roomId,
			afterSeq,
			since: q.since,
			until: q.until,
			limit,
			includeDeleted: q.includeDeleted,
		});
		if (rows.length === 0) return;
		const exported = await exportRows(db, rows);
		await onRows?.(exported);
		let chunk = '';
		for (const row of exported) chunk += line(row);
		yield chunk;
		afterSeq = (rows.at(-1) as MessageRow).seq;
		if (rows.length < limit) return;
	}
}

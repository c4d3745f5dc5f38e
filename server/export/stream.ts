import type { Queryable } from '../db/index.ts';
import * as messages from '../data/messages.ts';
import type { MessageRow } from '#protocol/api.ts';

export type ExportFormat = 'jsonl' | 'csv';

export const csvHeader =
	'seq,room_id,client_msg_id,kind,sender_id,sender_name,content,reply_to_id,target_id,created_at,received_at\r\n';

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

export function toCsvLine(r: MessageRow): string {
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
		]
			.map(csvField)
			.join(',') + '\r\n'
	);
}

export function toJsonLine(r: MessageRow): string {
	return JSON.stringify(r) + '\n';
}

/**
 * A room's mirrored messages as export text, one batch of rows at a time (keyset pagination on seq):
 * memory stays constant whatever the room's size. `onRows` reports progress.
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
	onRows?: (n: number) => void,
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
		let chunk = '';
		for (const row of rows) chunk += line(row);
		yield chunk;
		onRows?.(rows.length);
		afterSeq = (rows.at(-1) as MessageRow).seq;
		if (rows.length < limit) return;
	}
}

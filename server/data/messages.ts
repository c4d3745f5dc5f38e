import type { Queryable } from '../db/index.ts';
import type { MessageRow } from '../../src/lib/protocol/api.ts';
import type { RoomEvent } from '../../src/lib/protocol/events.ts';

/**
 * Mirrors events into `messages`. Idempotent on (room_id, client_msg_id): a replayed update, a
 * restart or a second node never duplicates a row, and the first receive time and seq are kept.
 *
 * Returns the events whose id the room's history already holds for another sender or kind (`roomId clientMsgId`
 * keys): an id taken by a message that was trimmed from the document, reused by someone else. The caller rolls
 * back and refuses those. Re-sends of the same event are not in it. In the usual case (every row new) this costs
 * nothing beyond the insert.
 */
export async function mirror(
	db: Queryable,
	rows: { roomId: string; event: RoomEvent }[],
): Promise<Set<string>> {
	const taken = new Set<string>();
	if (rows.length === 0) return taken;
	const inserted = await db.query<{ room_id: string; client_msg_id: string }>(
		`INSERT INTO messages (room_id, client_msg_id, kind, sender_id, content, reply_to, target_id, created_at)
		 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::uuid[], $7::uuid[], $8::timestamptz[])
		 ON CONFLICT (room_id, client_msg_id) DO NOTHING
		 RETURNING room_id, client_msg_id`,
		[
			rows.map((r) => r.roomId),
			rows.map((r) => r.event.clientMsgId),
			rows.map((r) => r.event.kind),
			rows.map((r) => r.event.senderId),
			rows.map(({ event }) => ('content' in event ? event.content : 'emoji' in event ? event.emoji : null)),
			rows.map(({ event }) => (event.kind === 'message' ? (event.replyToId ?? null) : null)),
			rows.map(({ event }) => (event.kind === 'message' ? null : event.targetId)),
			rows.map((r) => r.event.createdAt),
		],
	);
	if (inserted.rows.length < rows.length) {
		const fresh = new Set(inserted.rows.map((r) => `${r.room_id} ${r.client_msg_id}`));
		const existing = rows.filter((r) => !fresh.has(`${r.roomId} ${r.event.clientMsgId}`));
		const { rows: found } = await db.query<{
			room_id: string;
			client_msg_id: string;
			kind: string;
			sender_id: string;
		}>(
			`SELECT m.room_id, m.client_msg_id, m.kind, m.sender_id FROM messages m
			 JOIN unnest($1::uuid[], $2::uuid[]) AS k (room_id, client_msg_id) USING (room_id, client_msg_id)`,
			[existing.map((r) => r.roomId), existing.map((r) => r.event.clientMsgId)],
		);
		const wanted = new Map(existing.map((r) => [`${r.roomId} ${r.event.clientMsgId}`, r.event]));
		for (const row of found) {
			const key = `${row.room_id} ${row.client_msg_id}`;
			const event = wanted.get(key);
			if (event && (event.senderId !== row.sender_id || event.kind !== row.kind)) taken.add(key);
		}
		if (taken.size > 0) return taken;
	}
	const edits = rows.filter((r) => r.event.kind === 'edit');
	if (edits.length > 0) {
		// An edit written offline can arrive after its message was deleted: it is masked like the message.
		await db.query(
			`UPDATE messages e SET deleted_at = t.deleted_at, deleted_by = t.deleted_by
			 FROM messages t
			 WHERE e.room_id = ANY($1::uuid[]) AND e.client_msg_id = ANY($2::uuid[]) AND e.kind = 'edit'
			   AND t.room_id = e.room_id AND t.client_msg_id = e.target_id AND t.kind = 'message' AND t.deleted_at IS NOT NULL`,
			[[...new Set(edits.map((r) => r.roomId))], edits.map((r) => r.event.clientMsgId)],
		);
	}
	const deletes = rows.filter((r) => r.event.kind === 'delete');
	if (deletes.length === 0) return taken;
	// The target and its edits are marked; the first delete is the one that counts.
	await db.query(
		`UPDATE messages m SET deleted_at = d.at, deleted_by = d.by
		 FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[]) AS d (room_id, target, by, at)
		 WHERE m.room_id = d.room_id AND m.deleted_at IS NULL
		   AND ((m.client_msg_id = d.target AND m.kind = 'message') OR (m.target_id = d.target AND m.kind = 'edit'))`,
		[
			deletes.map((r) => r.roomId),
			deletes.map((r) => (r.event as { targetId: string }).targetId),
			deletes.map((r) => r.event.senderId),
			deletes.map((r) => r.event.createdAt),
		],
	);
	return taken;
}

/** The content of a deleted message (and of its edits) is kept for the audit trail but masked on every read. */
const maskedContent = 'CASE WHEN m.deleted_at IS NULL THEN m.content END AS content';

const selectRows = (includeDeleted = false) => `
	SELECT m.seq, m.room_id, m.client_msg_id, m.kind, m.sender_id, u.name AS sender_name,
		${includeDeleted ? 'm.content' : maskedContent}, m.reply_to, m.target_id, m.created_at, m.received_at
	FROM messages m LEFT JOIN users u ON u.id = m.sender_id`;

interface DbRow {
	seq: string | number;
	room_id: string;
	client_msg_id: string;
	kind: string;
	sender_id: string;
	sender_name: string | null;
	content: string | null;
	reply_to: string | null;
	target_id: string | null;
	created_at: Date;
	received_at: Date;
}

function toRow(r: DbRow): MessageRow {
	return {
		seq: Number(r.seq),
		roomId: r.room_id,
		clientMsgId: r.client_msg_id,
		kind: r.kind,
		senderId: r.sender_id,
		senderName: r.sender_name,
		content: r.content,
		replyToId: r.reply_to,
		targetId: r.target_id,
		createdAt: new Date(r.created_at).toISOString(),
		receivedAt: new Date(r.received_at).toISOString(),
	};
}

/** The newest `limit` rows with seq < before, in ascending seq order. */
export async function page(
	db: Queryable,
	roomId: string,
	before: number | undefined,
	limit: number,
): Promise<{ items: MessageRow[]; nextBefore: number | null }> {
	const { rows } = await db.query<DbRow>(
		`SELECT * FROM (${selectRows()} WHERE m.room_id = $1 AND ($2::bigint IS NULL OR m.seq < $2) ORDER BY m.seq DESC LIMIT $3) p
		 ORDER BY seq`,
		[roomId, before ?? null, limit],
	);
	const items = rows.map(toRow);
	return { items, nextBefore: items.length === limit ? (items[0]?.seq ?? null) : null };
}

/**
 * One batch of a room's rows after `afterSeq`, in seq order. Exports walk a room batch by batch
 * (keyset pagination), so memory stays constant whatever the room's size and no transaction is held open.
 */
export async function batchAfter(
	db: Queryable,
	q: {
		roomId: string;
		afterSeq: number;
		since?: string;
		until?: string;
		limit: number;
		/** The content of deleted messages too (an admin's audit export). */
		includeDeleted?: boolean;
	},
): Promise<MessageRow[]> {
	const { rows } = await db.query<DbRow>(
		`${selectRows(q.includeDeleted)}
		 WHERE m.room_id = $1 AND m.seq > $2
		   AND ($3::timestamptz IS NULL OR m.created_at >= $3) AND ($4::timestamptz IS NULL OR m.created_at < $4)
		 ORDER BY m.seq LIMIT $5`,
		[q.roomId, q.afterSeq, q.since ?? null, q.until ?? null, q.limit],
	);
	return rows.map(toRow);
}

export async function count(
	db: Queryable,
	q: { roomId: string; since?: string; until?: string },
): Promise<number> {
	const { rows } = await db.query<{ n: string | number }>(
		`SELECT count(*) AS n FROM messages m WHERE m.room_id = $1
		 AND ($2::timestamptz IS NULL OR m.created_at >= $2) AND ($3::timestamptz IS NULL OR m.created_at < $3)`,
		[q.roomId, q.since ?? null, q.until ?? null],
	);
	return Number(rows[0]?.n ?? 0);
}

/**
 * Full-text search over the rooms the user belongs to: messages and edits, not deleted ones, best match first.
 * The snippet is plain text with each hit between `<mark>` and `</mark>`: not HTML (the content is not escaped),
 * so a client must render it as text, splitting on those two markers.
 * Parameters: $1 user id, $2 query text, $3 room id or null, $4 limit.
 */
export const searchSql = `
	SELECT m.seq, m.room_id, m.client_msg_id, m.kind, m.sender_id, u.name AS sender_name, m.content,
		m.reply_to, m.target_id, m.created_at, m.received_at,
		ts_headline('simple', m.content, query,
			'StartSel=<mark>, StopSel=</mark>, MaxFragments=1, MaxWords=24, MinWords=8') AS snippet
	FROM messages m
	JOIN memberships mb ON mb.room_id = m.room_id AND mb.user_id = $1
	LEFT JOIN users u ON u.id = m.sender_id,
	websearch_to_tsquery('simple', $2) AS query
	WHERE m.tsv @@ query AND m.deleted_at IS NULL AND m.kind IN ('message', 'edit')
	  AND ($3::uuid IS NULL OR m.room_id = $3)
	ORDER BY ts_rank(m.tsv, query) DESC, m.seq DESC
	LIMIT $4`;

export async function search(
	db: Queryable,
	q: { userId: string; query: string; roomId?: string; limit: number },
): Promise<(MessageRow & { snippet: string })[]> {
	const { rows } = await db.query<DbRow & { snippet: string }>(searchSql, [
		q.userId,
		q.query,
		q.roomId ?? null,
		q.limit,
	]);
	return rows.map((r) => ({ ...toRow(r), snippet: r.snippet }));
}

/** The kind and sender of the given events of a room, for edits and reactions of messages trimmed into history. */
export async function kindsAndSenders(
	db: Queryable,
	roomId: string,
	clientMsgIds: string[],
): Promise<Map<string, { kind: string; senderId: string }>> {
	const { rows } = await db.query<{ client_msg_id: string; kind: string; sender_id: string }>(
		'SELECT client_msg_id, kind, sender_id FROM messages WHERE room_id = $1 AND client_msg_id = ANY($2::uuid[])',
		[roomId, clientMsgIds],
	);
	return new Map(rows.map((r) => [r.client_msg_id, { kind: r.kind, senderId: r.sender_id }]));
}

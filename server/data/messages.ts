import type { Queryable } from '../db/index.ts';
import type { MessageRow, Role } from '#protocol/api.ts';
import type { AttachmentRef, RoomEvent } from '#protocol/events.ts';
import { toB64 } from './documents.ts';
import { eventColumns } from '#protocol/rows.ts';

/** SQLSTATE of `chat_durable_append` (migrations/0004): some of the batch's event ids are taken. */
const idsTaken = 'CH409';
/** SQLSTATE of `chat_checked_append` (migrations/0005): some writers are no longer writing members. */
const writersRefused = 'CH403';

/**
 * Nothing of a batch was written: some of its updates' writers had lost their writing membership when the append
 * ran. `refused` maps `roomId userId` to the writer's role now (`readonly`), or null when no longer a member.
 */
export class WritersRefused extends Error {
	readonly refused: Map<string, Role | null>;
	constructor(refused: Map<string, Role | null>) {
		super('writers without a writing membership');
		this.refused = refused;
	}
}

/**
 * The durable append of a batch (migrations/0004_durable_append.sql, with a message's files since 0009; one
 * statement and so one round trip): mirrors `rows` into `messages` (idempotent on (room_id, client_msg_id): a
 * replayed update, a restart or a second node never duplicates a row, and the first receive time and seq are kept),
 * marks what edits and deletes hit, and appends `updates` to the document log, all or nothing.
 *
 * Returns the events whose id the room's history already holds for another sender or kind (`roomId clientMsgId`
 * keys): an id taken by a message that was trimmed from the document, reused by someone else. Then nothing was
 * written; the caller refuses those and appends the rest again. Re-sends of the same event are not in it.
 *
 * An update with a `writer` is written only while that writer is a member of the room with a writing role, checked
 * under a lock in the same transaction (migrations/0005): otherwise nothing is written and `WritersRefused` names
 * the writers to refuse.
 */
export async function durableAppend(
	db: Queryable,
	rows: { roomId: string; event: RoomEvent }[],
	updates: { name: string; update: Uint8Array; writer?: { roomId: string; userId: string } }[],
): Promise<Set<string>> {
	if (rows.length === 0 && updates.length === 0) return new Set();
	const writers = updates.flatMap((u) => (u.writer ? [u.writer] : []));
	const columns = rows.map((r) => eventColumns(r.event));
	const args = [
		updates.map((u) => u.name),
		updates.map((u) => toB64(u.update)),
		rows.map((r) => r.roomId),
		columns.map((c) => c.clientMsgId),
		columns.map((c) => c.kind),
		columns.map((c) => c.senderId),
		columns.map((c) => c.content),
		columns.map((c) => c.replyToId),
		columns.map((c) => c.targetId),
		columns.map((c) => c.createdAt),
		// JSON text per event (jsonb[] in SQL), null for none: both drivers pass an array of strings the same way.
		columns.map((c) => (c.attachments ? JSON.stringify(c.attachments) : null)),
	];
	try {
		if (writers.length === 0) {
			await db.query(`SELECT chat_durable_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, args, {
				prepared: 'chat_durable_append',
			});
		} else {
			await db.query(
				`SELECT chat_checked_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
				[writers.map((w) => w.roomId), writers.map((w) => w.userId), ...args],
				{ prepared: 'chat_checked_append' },
			);
		}
		return new Set();
	} catch (error) {
		const { code, detail } = error as { code?: unknown; detail?: unknown };
		if (code === writersRefused && typeof detail === 'string') {
			const refused = JSON.parse(detail) as [string, string, Role | null][];
			throw new WritersRefused(new Map(refused.map(([room, user, role]) => [`${room} ${user}`, role])));
		}
		if (code !== idsTaken || typeof detail !== 'string') throw error;
		return new Set(JSON.parse(detail) as string[]);
	}
}

/** Mirrors events into `messages` without a log entry (tools and tests): `durableAppend` with no updates. */
export function mirror(db: Queryable, rows: { roomId: string; event: RoomEvent }[]): Promise<Set<string>> {
	return durableAppend(db, rows, []);
}

/**
 * The content of a deleted message (and of its edits) is kept for the audit trail but masked on every read, and so
 * are a deleted message's files.
 */
const maskedContent = 'CASE WHEN m.deleted_at IS NULL THEN m.content END AS content';
const maskedAttachments = 'CASE WHEN m.deleted_at IS NULL THEN m.attachments END AS attachments';

const selectRows = (includeDeleted = false) => `
	SELECT m.seq, m.room_id, m.client_msg_id, m.kind, m.sender_id, u.name AS sender_name,
		${includeDeleted ? 'm.content' : maskedContent}, m.reply_to, m.target_id, m.created_at, m.received_at,
		${includeDeleted ? 'm.attachments' : maskedAttachments}
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
	/** jsonb: both drivers parse it. */
	attachments: AttachmentRef[] | null;
}

/**
 * The refs as the event carried them, keys in the schema's order (jsonb keeps its own order of keys), so a row
 * reads the same whichever way it was stored.
 */
export function storedRefs(refs: AttachmentRef[]): AttachmentRef[] {
	return refs.map(({ id, name, size, mediaType, width, height, placeholder }) => ({
		id,
		name,
		size,
		mediaType,
		...(width === undefined ? {} : { width }),
		...(height === undefined ? {} : { height }),
		...(placeholder === undefined ? {} : { placeholder }),
	}));
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
		...(r.attachments?.length ? { attachments: storedRefs(r.attachments) } : {}),
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

/** What one user wrote, in every room (those they left too), after `afterSeq` in seq order: their own export. */
export async function batchBySender(
	db: Queryable,
	q: { senderId: string; afterSeq: number; limit: number },
): Promise<MessageRow[]> {
	const { rows } = await db.query<DbRow>(
		`${selectRows()} WHERE m.sender_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3`,
		[q.senderId, q.afterSeq, q.limit],
	);
	return rows.map(toRow);
}

/** How many events one user wrote, in every room. */
export async function countBySender(db: Queryable, senderId: string): Promise<number> {
	const { rows } = await db.query<{ n: string | number }>(
		'SELECT count(*) AS n FROM messages WHERE sender_id = $1',
		[senderId],
	);
	return Number(rows[0]?.n ?? 0);
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
		m.reply_to, m.target_id, m.created_at, m.received_at, m.attachments,
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

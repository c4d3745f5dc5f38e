import { randomBytes, randomUUID } from 'node:crypto';
import * as rooms from '../../server/data/rooms.ts';
import * as users from '../../server/data/users.ts';
import type { Queryable } from '../../server/db/index.ts';
import { csvHeader, type ExportFormat } from '../../server/export/stream.ts';
import { parseCsv } from './csv.ts';

/**
 * Seeded rooms for the export tests and the export benchmark, and a reader for both export formats,
 * so the two check the same thing the same way.
 */

/** Contents that trip naive CSV and JSON writers: quotes, commas, CR, LF, CRLF, emoji, edge spaces. */
export const trickyContents = [
	'plain words',
	'she said "hi", then left',
	'"quoted from the first character to the last"',
	'one, two, three',
	'first line\nsecond line',
	'windows line\r\nend',
	'a lone carriage return\r in the middle',
	'emoji 🎉👩🏽‍💻 and ünïcödé, 日本語',
	'  spaces around  ',
] as const;

const seedEpoch = Date.parse('2024-01-01T00:00:00.000Z');
const seedStepMs = 60_000;

/** Message i (1-based) starts with its number, so every sample keeps its own tricky ending. */
export function seededContent(i: number): string {
	return `#${i} ${trickyContents[i % trickyContents.length]}`;
}

/** Message i was created i minutes after 2024-01-01T00:00:00Z. */
export function seededCreatedAt(i: number): string {
	return new Date(seedEpoch + i * seedStepMs).toISOString();
}

/** The i of a seeded message, from its createdAt. */
export function seededIndex(createdAt: string): number {
	return (Date.parse(createdAt) - seedEpoch) / seedStepMs;
}

export interface SeededRoom {
	roomId: string;
	userId: string;
	userName: string;
}

/**
 * A user, a group room they own, and `count` mirrored messages (1..count, one minute apart) written
 * by one INSERT … SELECT generate_series, so 100,000 rows take seconds, not minutes.
 */
export async function seedRoom(db: Queryable, count: number): Promise<SeededRoom> {
	const userName = `seed_${randomBytes(4).toString('hex')}`;
	const { id: userId } = await users.create(db, userName, 'not-a-password-hash');
	const roomId = randomUUID();
	await rooms.insert(db, {
		id: roomId,
		name: `export ${userName}`,
		isGroup: true,
		directKey: null,
		createdBy: userId,
	});
	await rooms.addMembers(db, roomId, [{ userId, role: 'owner' }]);
	await db.query(
		`INSERT INTO messages (room_id, client_msg_id, kind, sender_id, content, created_at)
		 SELECT $1, gen_random_uuid(), 'message', $2,
			'#' || i || ' ' || ($3::text[])[1 + i % cardinality($3::text[])],
			$4::timestamptz + i * interval '${seedStepMs} milliseconds'
		 FROM generate_series(1, $5::int) AS i
		 ORDER BY i`,
		[roomId, userId, trickyContents, new Date(seedEpoch).toISOString(), count],
	);
	return { roomId, userId, userName };
}

/** The fields both export formats carry, read back from either. */
export interface ExportedRow {
	seq: number;
	roomId: string;
	kind: string;
	senderId: string;
	senderName: string | null;
	content: string | null;
	createdAt: string;
}

/** The JSONL fields of the export, in the documented order (ARCHITECTURE.md). */
export const jsonlFields = [
	'seq',
	'roomId',
	'clientMsgId',
	'kind',
	'senderId',
	'senderName',
	'content',
	'replyToId',
	'targetId',
	'createdAt',
	'receivedAt',
];

export const csvColumns = csvHeader.trimEnd().split(',');

/**
 * Parses a whole export. CSV must be strict RFC 4180 with the documented header; JSONL must be one
 * object per LF-terminated line. Throws on anything else.
 */
export function readExport(text: string, format: ExportFormat): ExportedRow[] {
	if (format === 'jsonl') {
		if (text === '') return [];
		if (!text.endsWith('\n')) throw new Error('the last JSONL line does not end with LF');
		return text
			.slice(0, -1)
			.split('\n')
			.map((line) => JSON.parse(line) as ExportedRow);
	}
	const [header, ...records] = parseCsv(text);
	if (header?.join(',') !== csvColumns.join(','))
		throw new Error(`unexpected CSV header: ${header?.join(',')}`);
	return records.map((fields, n) => {
		if (fields.length !== csvColumns.length) {
			throw new Error(`CSV record ${n + 1} has ${fields.length} fields, not ${csvColumns.length}`);
		}
		const field = (name: string) => fields[csvColumns.indexOf(name)] as string;
		return {
			seq: Number(field('seq')),
			roomId: field('room_id'),
			kind: field('kind'),
			senderId: field('sender_id'),
			// CSV cannot tell an empty field from a null one; the seeded rows have no nulls in these.
			senderName: field('sender_name'),
			content: field('content'),
			createdAt: field('created_at'),
		};
	});
}

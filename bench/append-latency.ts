/**
 * `npm run bench:append`: what one message's statement costs in Postgres, alone (one connection, one message per
 * statement, as at a low rate): the seed design's `INSERT … ON CONFLICT (client_msg_id) DO NOTHING`, our durable
 * append (`chat_durable_append`: the log entry and the mirror row), and our checked append (`chat_checked_append`:
 * the same, with the writer's membership locked and read first), alternating over ROUNDS rounds of N statements
 * each, in a new order each round, on a throwaway database. Reports p50/p90/p99 in ms: the share of the seed's p50
 * gap that is Postgres's. ROOMS (100) rooms of ten members each fill the memberships table as at the goal-1 load;
 * SYNCHRONOUS_COMMIT=off leaves out the wait for the commit's flush (Postgres's own work per statement). The checked
 * append as migrations/0014 wrote it runs too, under another name, as the baseline of 0016.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as messages from '../server/data/messages.ts';
import { openPostgres } from '../server/db/postgres.ts';
import { migrate, migrationsDir } from '../server/db/migrate.ts';
import type { Queryable, QueryOptions } from '../server/db/types.ts';
import { createLogger } from '../server/log.ts';
import { admin, adminUrl } from './common.ts';
import { envNumber, fmt, percentile } from './harness.ts';

const N = envNumber('N', 400);
const ROUNDS = envNumber('ROUNDS', 5);
const ROOMS = envNumber('ROOMS', 100);
/** off: Postgres's work alone, without the wait for the commit's flush (the disk's share, which the seed pays too). */
const SYNC = process.env.SYNCHRONOUS_COMMIT ?? 'on';
const CONTENT = 'a message of about the length people write in a team chat';

const name = `bench_append_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
if (!['on', 'off'].includes(SYNC)) throw new Error(`SYNCHRONOUS_COMMIT: expected on or off, got "${SYNC}"`);
await admin(`CREATE DATABASE ${name}`);
await admin(`ALTER DATABASE ${name} SET synchronous_commit = ${SYNC}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
const db = await openPostgres(url.toString(), 1, createLogger('silent'));
try {
	await migrate(db);
	// ROOMS rooms of ten members, as at the goal-1 load (1,000 memberships by default): each statement is the next
	// member's of the first room. The size of the memberships table is part of what a membership check costs.
	const members = Array.from({ length: ROOMS * 10 }, () => randomUUID());
	const roomIds = Array.from({ length: ROOMS }, () => randomUUID());
	const room = roomIds[0] as string;
	let turn = 0;
	const nextMember = () => members[turn++ % 10] as string;
	await db.query(
		`INSERT INTO users (id, name, password_hash)
		 SELECT id, 'u' || i, 'x' FROM unnest($1::uuid[]) WITH ORDINALITY AS t (id, i)`,
		[members],
	);
	await db.query(
		`INSERT INTO rooms (id, name, is_group, created_by) SELECT id, 'r', true, $2 FROM unnest($1::uuid[]) id`,
		[roomIds, members[0]],
	);
	await db.query(
		`INSERT INTO memberships (room_id, user_id, role)
		 SELECT ($1::uuid[])[1 + (i - 1) / 10], id, 'member' FROM unnest($2::uuid[]) WITH ORDINALITY AS t (id, i)`,
		[roomIds, members],
	);
	await db.query('ANALYZE');
	// The seed's table, as bench/targets/seed-socketio.ts creates it.
	await db.query(`CREATE TABLE seed_messages (
		client_msg_id uuid PRIMARY KEY, room_id uuid NOT NULL, sender_id uuid NOT NULL, content text NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now())`);
	const update = new Uint8Array(120).fill(7);
	/** One message of the next member, as the server appends it: with its writer to check, or without. */
	const append = (q: Queryable, checked: boolean) => {
		const member = nextMember();
		const event = {
			kind: 'message' as const,
			clientMsgId: randomUUID(),
			senderId: member,
			content: CONTENT,
			createdAt: new Date().toISOString(),
		};
		const writer = checked ? { writer: { roomId: room, userId: member } } : {};
		return messages.durableAppend(
			q,
			[{ roomId: room, event }],
			[{ name: `room:${room}`, update, ...writer }],
		);
	};
	const statements: Record<string, () => Promise<unknown>> = {
		'seed INSERT': () =>
			db.query(
				`INSERT INTO seed_messages (client_msg_id, room_id, sender_id, content) VALUES ($1, $2, $3, $4)
				 ON CONFLICT (client_msg_id) DO NOTHING`,
				[randomUUID(), room, nextMember(), CONTENT],
			),
		'our append': () => append(db, false),
		'our checked append': () => append(db, true),
	};
	// migrations/0014's chat_checked_append under another name, as the baseline of 0016.
	const in0014 = fs.readFileSync(path.join(migrationsDir, '0014_checked_append_one_statement.sql'), 'utf8');
	const previous = /CREATE OR REPLACE FUNCTION chat_checked_append\([\s\S]*?\n\$\$;/.exec(in0014)?.[0];
	if (!previous) throw new Error('migrations/0014 no longer holds chat_checked_append');
	await db.query(previous.replace('chat_checked_append(', 'bench_checked_append_0014('));
	// The same call as the server's, to that function: durableAppend needs nothing of the database but `query`.
	const as0014: Queryable = {
		query: <Row>(text: string, values?: unknown[], options?: QueryOptions) =>
			db.query<Row>(text.replace('chat_checked_append(', 'bench_checked_append_0014('), values, {
				prepared: options?.prepared && `${options.prepared}_0014`,
			}),
		exec: (sql) => db.exec(sql),
	};
	statements['our checked append, as in 0014'] = () => append(as0014, true);
	const latencies = new Map(Object.keys(statements).map((label) => [label, [] as number[]]));
	/** WAL bytes and full-page images each statement wrote, summed over its rounds (what the commit flushes). */
	const wal = new Map(Object.keys(statements).map((label) => [label, { bytes: 0, fpi: 0 }]));
	for (let round = 0; round < ROUNDS; round++)
		// A new order each round: the statement that runs right after another is not always the same one.
		for (const [label, run] of shuffled(Object.entries(statements))) {
			const list = latencies.get(label) as number[];
			const before = await walPosition(db);
			for (let i = 0; i < N; i++) {
				const started = performance.now();
				await run();
				list.push(performance.now() - started);
			}
			const after = await walPosition(db);
			const sum = wal.get(label) as { bytes: number; fpi: number };
			sum.bytes += after.bytes - before.bytes;
			sum.fpi += after.fpi - before.fpi;
		}
	const base = percentile(
		(latencies.get('seed INSERT') ?? []).sort((a, b) => a - b),
		50,
	);
	console.log(
		`${ROUNDS} alternating rounds of ${N} statements each, one connection, synchronous_commit ${SYNC}:\n`,
	);
	console.log(
		'| statement | p50 ms | ×seed | p90 ms | p99 ms | WAL bytes | full pages |\n| --- | --- | --- | --- | --- | --- | --- |',
	);
	for (const [label, list] of latencies) {
		list.sort((a, b) => a - b);
		const p50 = percentile(list, 50);
		const { bytes, fpi } = wal.get(label) as { bytes: number; fpi: number };
		const count = list.length;
		console.log(
			`| ${label} | ${fmt(p50, 3)} | ${fmt(p50 / base, 2)}× | ${fmt(percentile(list, 90), 3)} | ${fmt(percentile(list, 99), 3)} | ${Math.round(bytes / count)} | ${fmt(fpi / count, 2)} |`,
		);
	}
	console.log(
		"\nWAL bytes and full pages: per statement, the whole cluster's (nothing else should write meanwhile).",
	);
} finally {
	await db.close();
	await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/** Where the cluster's WAL is, and how many full-page images it holds so far (pg_stat_wal, Postgres 14 and later). */
async function walPosition(q: Queryable): Promise<{ bytes: number; fpi: number }> {
	const { rows } = await q.query<{ bytes: string; fpi: string }>(
		`SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::text AS bytes, wal_fpi::text AS fpi FROM pg_stat_wal`,
	);
	return { bytes: Number(rows[0]?.bytes), fpi: Number(rows[0]?.fpi) };
}

/** A uniformly random order of `items` (Fisher–Yates). */
function shuffled<T>(items: T[]): T[] {
	const out = [...items];
	for (let i = out.length - 1; i > 0; i--) {
		const j = Math.floor(Math.random() * (i + 1));
		[out[i], out[j]] = [out[j] as T, out[i] as T];
	}
	return out;
}

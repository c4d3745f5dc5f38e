/**
 * `npm run bench:append`: what one message's statement costs in Postgres, alone (one connection, one message per
 * statement, as at a low rate): the seed design's `INSERT … ON CONFLICT (client_msg_id) DO NOTHING`, our durable
 * append (`chat_durable_append`: the log entry and the mirror row), and our checked append (`chat_checked_append`:
 * the same, with the writer's membership locked and read first), alternating over ROUNDS rounds of N statements
 * each on a throwaway database. Reports p50/p90/p99 in ms: the share of the seed's p50 gap that is Postgres's.
 * The checked append as migrations/0009 wrote it (the lock, then a second statement to read the memberships) runs
 * too, under another name, as the baseline of migrations/0014.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as messages from '../server/data/messages.ts';
import { openPostgres } from '../server/db/postgres.ts';
import { migrate, migrationsDir } from '../server/db/migrate.ts';
import type { Queryable } from '../server/db/types.ts';
import { createLogger } from '../server/log.ts';
import { admin, adminUrl } from './common.ts';
import { envNumber, fmt, percentile } from './harness.ts';

const N = envNumber('N', 400);
const ROUNDS = envNumber('ROUNDS', 5);
const CONTENT = 'a message of about the length people write in a team chat';

const name = `bench_append_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
await admin(`CREATE DATABASE ${name}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
const db = await openPostgres(url.toString(), 1, createLogger('silent'));
try {
	await migrate(db);
	const room = randomUUID();
	const user = randomUUID();
	await db.query(`INSERT INTO users (id, name, password_hash) VALUES ($1, 'u', 'x')`, [user]);
	await db.query(`INSERT INTO rooms (id, name, is_group, created_by) VALUES ($1, 'r', true, $2)`, [
		room,
		user,
	]);
	await db.query(`INSERT INTO memberships (room_id, user_id, role) VALUES ($1, $2, 'member')`, [room, user]);
	// The seed's table, as bench/targets/seed-socketio.ts creates it.
	await db.query(`CREATE TABLE seed_messages (
		client_msg_id uuid PRIMARY KEY, room_id uuid NOT NULL, sender_id uuid NOT NULL, content text NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now())`);
	const update = new Uint8Array(120).fill(7);
	const event = () => ({
		kind: 'message' as const,
		clientMsgId: randomUUID(),
		senderId: user,
		content: CONTENT,
		createdAt: new Date().toISOString(),
	});
	const statements: Record<string, () => Promise<unknown>> = {
		'seed INSERT': () =>
			db.query(
				`INSERT INTO seed_messages (client_msg_id, room_id, sender_id, content) VALUES ($1, $2, $3, $4)
				 ON CONFLICT (client_msg_id) DO NOTHING`,
				[randomUUID(), room, user, CONTENT],
			),
		'our append': () =>
			messages.durableAppend(db, [{ roomId: room, event: event() }], [{ name: `room:${room}`, update }]),
		'our checked append': () =>
			messages.durableAppend(
				db,
				[{ roomId: room, event: event() }],
				[{ name: `room:${room}`, update, writer: { roomId: room, userId: user } }],
			),
	};
	// migrations/0009's chat_checked_append under another name, for the comparison only.
	const in0009 = fs.readFileSync(path.join(migrationsDir, '0009_message_attachments.sql'), 'utf8');
	const previous = /CREATE FUNCTION chat_checked_append\([\s\S]*?\n\$\$;/.exec(in0009)?.[0];
	if (!previous) throw new Error('migrations/0009 no longer holds chat_checked_append');
	await db.query(previous.replace('chat_checked_append(', 'bench_checked_append_0009('));
	// The same call as the server's, to that function: durableAppend needs nothing of the database but `query`.
	const as0009: Queryable = {
		query: <Row>(text: string, values?: unknown[]) =>
			db.query<Row>(text.replace('chat_checked_append(', 'bench_checked_append_0009('), values),
		exec: (sql) => db.exec(sql),
	};
	statements['our checked append, as in 0009'] = () =>
		messages.durableAppend(
			as0009,
			[{ roomId: room, event: event() }],
			[{ name: `room:${room}`, update, writer: { roomId: room, userId: user } }],
		);
	const latencies = new Map<string, number[]>();
	for (let round = 0; round < ROUNDS; round++)
		for (const [label, run] of Object.entries(statements)) {
			const list = latencies.get(label) ?? [];
			latencies.set(label, list);
			for (let i = 0; i < N; i++) {
				const started = performance.now();
				await run();
				list.push(performance.now() - started);
			}
		}
	const base = percentile(
		(latencies.get('seed INSERT') ?? []).sort((a, b) => a - b),
		50,
	);
	console.log(`${ROUNDS} alternating rounds of ${N} statements each, one connection:\n`);
	console.log('| statement | p50 ms | ×seed | p90 ms | p99 ms |\n| --- | --- | --- | --- | --- |');
	for (const [label, list] of latencies) {
		list.sort((a, b) => a - b);
		const p50 = percentile(list, 50);
		console.log(
			`| ${label} | ${fmt(p50, 3)} | ${fmt(p50 / base, 2)}× | ${fmt(percentile(list, 90), 3)} | ${fmt(percentile(list, 99), 3)} |`,
		);
	}
} finally {
	await db.close();
	await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

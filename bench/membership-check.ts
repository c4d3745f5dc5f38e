/**
 * `npm run bench:membership`: what the membership check inside the durable append costs (migrations/0005,
 * `chat_checked_append`: the writer's membership row is locked and read in the append's own statement). The same
 * stream of appends (a batch of BATCH single-message updates from BATCH writers in ROOMS rooms, as the durable log
 * groups them under load) goes to one Postgres database with and without writers, alternating over ROUNDS rounds
 * in one process. Reports the median time per batch of each and the ratio.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import * as messages from '../server/data/messages.ts';
import { openPostgres } from '../server/db/postgres.ts';
import { migrate } from '../server/db/migrate.ts';
import { createLogger } from '../server/log.ts';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const BATCHES = Number(process.env.BATCHES ?? 300);
const BATCH = Number(process.env.BATCH ?? 8);
const ROOMS = Number(process.env.ROOMS ?? 20);
const ROUNDS = Number(process.env.ROUNDS ?? 7);

const name = `chat_bench_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(ADMIN_URL);
url.pathname = `/${name}`;
const db = await openPostgres(url.toString(), 4, createLogger('silent'));

try {
	await migrate(db);
	const rooms = Array.from({ length: ROOMS }, () => randomUUID());
	const users = Array.from({ length: ROOMS * BATCH }, () => randomUUID());
	await db.query(
		`INSERT INTO users (id, name, password_hash) SELECT id, 'u' || left(id::text, 12), 'x' FROM unnest($1::uuid[]) AS id`,
		[users],
	);
	await db.query(
		`INSERT INTO rooms (id, name, is_group, created_by) SELECT id, 'r', true, $2 FROM unnest($1::uuid[]) AS id`,
		[rooms, users[0]],
	);
	await db.query(
		`INSERT INTO memberships (room_id, user_id, role)
		 SELECT ($1::uuid[])[1 + ((i - 1) % $3)::int], u, 'member' FROM unnest($2::uuid[]) WITH ORDINALITY AS t (u, i)`,
		[rooms, users, ROOMS],
	);
	const update = new Uint8Array(120).fill(7);

	/** BATCHES appends of BATCH updates each, every writer a member of its room; the total in ms. */
	async function run(checked: boolean): Promise<number> {
		const started = performance.now();
		for (let b = 0; b < BATCHES; b++) {
			const entries = Array.from({ length: BATCH }, (_, i) => {
				const writer = (b * BATCH + i) % users.length;
				const roomId = rooms[writer % ROOMS] as string;
				const userId = users[writer] as string;
				return { roomId, userId };
			});
			await messages.durableAppend(
				db,
				entries.map(({ roomId, userId }) => ({
					roomId,
					event: {
						kind: 'message' as const,
						clientMsgId: randomUUID(),
						senderId: userId,
						content: 'the quick brown fox jumps over the lazy dog',
						createdAt: new Date().toISOString(),
					},
				})),
				entries.map(({ roomId, userId }) => ({
					name: `room:${roomId}`,
					update,
					writer: checked ? { roomId, userId } : undefined,
				})),
			);
		}
		return performance.now() - started;
	}

	await run(false);
	await run(true);
	const plain: number[] = [];
	const checked: number[] = [];
	for (let r = 0; r < ROUNDS; r++) {
		plain.push(await run(false));
		checked.push(await run(true));
	}
	const median = (xs: number[]) => [...xs].sort((a, c) => a - c)[Math.floor(xs.length / 2)] as number;
	const perBatch = (ms: number) => ((ms / BATCHES) * 1000).toFixed(0);
	console.log(
		`durable append of ${BATCH} updates (${BATCHES} batches × ${ROUNDS} rounds, alternating): ` +
			`without the membership check ${perBatch(median(plain))} µs/batch, ` +
			`with it ${perBatch(median(checked))} µs/batch, ratio ${(median(checked) / median(plain)).toFixed(2)}×`,
	);
} finally {
	await db.close();
	await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
	await admin.end();
}

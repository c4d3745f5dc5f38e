import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../server/config.ts';
import * as reads from '../../server/data/reads.ts';
import { openDb, type Db } from '../../server/db/index.ts';
import { migrate } from '../../server/db/migrate.ts';
import { createLogger } from '../../server/log.ts';
import { createTestDatabase } from '../helpers/backends.ts';

const ROOMS = 400;
const MEMBERS = 10;

/** Every node in a JSON plan (EXPLAIN (FORMAT JSON)), depth first. */
function nodesOf(plan: Record<string, unknown>): Record<string, unknown>[] {
	const children = (plan['Plans'] as Record<string, unknown>[] | undefined) ?? [];
	return [plan, ...children.flatMap(nodesOf)];
}

describe.skipIf(!inject('postgresAdminUrl'))(
	`read positions of ${ROOMS} rooms of ${MEMBERS} on Postgres`,
	() => {
		let database: Awaited<ReturnType<typeof createTestDatabase>>;
		let db: Db;
		let room: string;
		let gone: string;

		beforeAll(async () => {
			database = await createTestDatabase();
			db = await openDb(parseConfig({ DATABASE_URL: database.url }), createLogger('warn'));
			await migrate(db);
			// Rooms of ten members, each with a read position, as at the capacity benchmark's 4,000 users; the
			// positions came after the statistics were gathered, as they do under use until autovacuum's next analyze.
			await db.exec(`
				INSERT INTO users (id, name, password_hash)
					SELECT gen_random_uuid(), 'u' || i, 'x' FROM generate_series(1, ${ROOMS * MEMBERS}) i;
				INSERT INTO rooms (id, name, is_group, created_by)
					SELECT gen_random_uuid(), 'r' || i, true, (SELECT id FROM users LIMIT 1) FROM generate_series(1, ${ROOMS}) i;
				INSERT INTO memberships (room_id, user_id, role)
					SELECT r.id, u.id, 'member'
					FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM rooms) r
					JOIN (SELECT id, (row_number() OVER (ORDER BY id) - 1) / ${MEMBERS} AS n FROM users) u USING (n);
				ANALYZE;
				INSERT INTO read_positions (room_id, user_id, last_read_at, last_read_id)
					SELECT room_id, user_id, now(), gen_random_uuid() FROM memberships;
			`);
			const { rows } = await db.query<{ room_id: string; user_id: string }>(
				'SELECT room_id, user_id FROM memberships ORDER BY room_id, user_id LIMIT 1',
			);
			room = rows[0]?.room_id as string;
			gone = rows[0]?.user_id as string;
			await db.query('DELETE FROM memberships WHERE room_id = $1 AND user_id = $2', [room, gone]);
		}, 60_000);

		afterAll(async () => {
			await db?.close();
			await database?.drop();
		});

		it("lists the positions of a room's current members only", async () => {
			const lists = await reads.lists(db, [room]);
			const members = lists.get(room) ?? [];
			expect(members).toHaveLength(MEMBERS - 1);
			expect(members.map((m) => m.userId)).not.toContain(gone);
		});

		it('reads a room by its keys, not every membership (asserted on the query plan, not on time)', async () => {
			const { rows } = await db.query<{ 'QUERY PLAN': [{ Plan: Record<string, unknown> }] }>(
				`EXPLAIN (FORMAT JSON) ${reads.listsSql.replaceAll('$1', `'{${room}}'`)}`,
			);
			const nodes = nodesOf((rows[0]?.['QUERY PLAN'] as [{ Plan: Record<string, unknown> }])[0].Plan);
			const scans = nodes.filter((n) => n['Relation Name'] === 'memberships').map((n) => n['Node Type']);
			expect(scans.length).toBeGreaterThan(0);
			expect(scans).not.toContain('Seq Scan');
		});
	},
);

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../server/config.ts';
import * as messages from '../../server/data/messages.ts';
import { openDb, type Db } from '../../server/db/index.ts';
import { migrate } from '../../server/db/migrate.ts';
import { createLogger } from '../../server/log.ts';
import { createTestDatabase } from '../helpers/backends.ts';
import { seedRoom, type SeededRoom } from '../helpers/export-fixtures.ts';

const ROWS = 100_000;
const WORD = 'zanzibarquux';

describe.skipIf(!inject('postgresAdminUrl'))(
	`search among ${ROWS.toLocaleString('en')} mirrored messages`,
	() => {
		let database: Awaited<ReturnType<typeof createTestDatabase>>;
		let db: Db;
		let mine: SeededRoom;
		let theirs: SeededRoom;
		const hit = randomUUID();

		const add = (room: SeededRoom, content: string, clientMsgId = randomUUID()) =>
			messages.mirror(db, [
				{
					roomId: room.roomId,
					event: {
						kind: 'message',
						clientMsgId,
						senderId: room.userId,
						content,
						createdAt: new Date().toISOString(),
					},
				},
			]);

		beforeAll(async () => {
			database = await createTestDatabase();
			db = await openDb(parseConfig({ DATABASE_URL: database.url }), createLogger('warn'));
			await migrate(db);
			mine = await seedRoom(db, ROWS);
			theirs = await seedRoom(db, 1_000);
			await add(mine, `<script>alert(1)</script> the ${WORD} plan & more`, hit);
			await add(theirs, `their ${WORD} must never show up`);
			const gone = randomUUID();
			await add(mine, `a deleted ${WORD}`, gone);
			await messages.mirror(db, [
				{
					roomId: mine.roomId,
					event: {
						kind: 'delete',
						clientMsgId: randomUUID(),
						senderId: mine.userId,
						targetId: gone,
						createdAt: new Date().toISOString(),
					},
				},
			]);
			await db.query('ANALYZE messages');
		}, 120_000);

		afterAll(async () => {
			await db?.close();
			await database?.drop();
		});

		it("finds the word only in the caller's rooms, skips deleted messages, and marks it in the snippet", async () => {
			const found = await messages.search(db, { userId: mine.userId, query: WORD, limit: 50 });
			expect(found.map((r) => r.clientMsgId)).toEqual([hit]);
			expect(found[0]?.roomId).toBe(mine.roomId);
			expect(found[0]?.snippet).toContain(`<mark>${WORD}</mark>`);
			expect(found[0]?.content).toBe(`<script>alert(1)</script> the ${WORD} plan & more`);
			expect(await messages.search(db, { userId: theirs.userId, query: WORD, limit: 50 })).toHaveLength(1);
			expect(await messages.search(db, { userId: randomUUID(), query: WORD, limit: 50 })).toEqual([]);
		});

		it("takes each message's words into the index as it is written, not into a pending list (migrations/0015)", async () => {
			const { rows } = await db.query<{ reloptions: string[] | null }>(
				`SELECT reloptions FROM pg_class WHERE relname = 'messages_tsv_idx'`,
			);
			expect(rows[0]?.reloptions).toContain('fastupdate=off');
		});

		it('uses the GIN index on the tsvector (asserted on the query plan, not on time)', async () => {
			const { rows } = await db.query<{ 'QUERY PLAN': unknown }>(
				`EXPLAIN (FORMAT JSON) ${messages.searchSql}`,
				[mine.userId, WORD, null, 50],
			);
			const plan = JSON.stringify(rows[0]?.['QUERY PLAN']);
			expect(plan).toContain('"Index Name":"messages_tsv_idx"');
			expect(plan).not.toMatch(
				/"Node Type":"Seq Scan","Parent Relationship":"[^"]*",[^}]*"Relation Name":"messages"/,
			);
		});
	},
);

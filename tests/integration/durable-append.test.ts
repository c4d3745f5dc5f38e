import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../server/config.ts';
import * as documents from '../../server/data/documents.ts';
import * as messages from '../../server/data/messages.ts';
import * as rooms from '../../server/data/rooms.ts';
import * as users from '../../server/data/users.ts';
import { openDb, type Db, type Queryable } from '../../server/db/index.ts';
import { migrate } from '../../server/db/migrate.ts';
import { createLogger } from '../../server/log.ts';
import type { RoomEvent } from '../../src/lib/protocol/events.ts';
import { createTestDatabase, describeEachBackend } from '../helpers/backends.ts';
import { seedRoom, type SeededRoom } from '../helpers/export-fixtures.ts';
import { tmpDir } from '../helpers/server.ts';

/**
 * The durable append of a batch (`messages.durableAppend`, one statement: migrations/0004) writes the mirror rows
 * and the log entries all or nothing, and refuses an id that another sender's event in the room holds.
 */
describeEachBackend('the durable append of a batch', (backend) => {
	let db: Db;
	let drop = async () => {};
	let room: SeededRoom;
	const name = () => `room:${room.roomId}`;
	const message = (content: string, senderId = room.userId): RoomEvent => ({
		kind: 'message',
		clientMsgId: randomUUID(),
		senderId,
		content,
		createdAt: new Date().toISOString(),
	});
	const rowsOf = async () =>
		(
			await db.query<{ client_msg_id: string; deleted_at: Date | null }>(
				'SELECT client_msg_id, deleted_at FROM messages WHERE room_id = $1 ORDER BY seq',
				[room.roomId],
			)
		).rows;
	const logged = async () => (await documents.load(db, name())).updates.map((u) => [...u.update]);

	beforeAll(async () => {
		const pgdb = backend === 'postgres' ? await createTestDatabase() : undefined;
		db = await openDb(
			parseConfig({ DATA_DIR: tmpDir('append'), ...(pgdb ? { DATABASE_URL: pgdb.url } : {}) }),
			createLogger('silent'),
		);
		drop = async () => {
			await db.close();
			await pgdb?.drop();
		};
		await migrate(db);
		room = await seedRoom(db, 0);
	}, 60_000);
	afterAll(() => drop());

	it('writes the rows and the log entries in order, and a re-send again without a second row', async () => {
		const a = message('first');
		const b = message('second');
		const rows = [a, b].map((event) => ({ roomId: room.roomId, event }));
		const updates = [new Uint8Array([1, 2]), new Uint8Array([3])].map((update) => ({ name: name(), update }));
		expect(await messages.durableAppend(db, rows, updates)).toEqual(new Set());
		expect((await rowsOf()).map((r) => r.client_msg_id)).toEqual([a.clientMsgId, b.clientMsgId]);
		expect(await logged()).toEqual([[1, 2], [3]]);

		// The same events again (a client re-sending what it was never acknowledged): logged, not duplicated.
		expect(await messages.durableAppend(db, rows, [{ name: name(), update: new Uint8Array([4]) }])).toEqual(
			new Set(),
		);
		expect(await rowsOf()).toHaveLength(2);
		expect(await logged()).toEqual([[1, 2], [3], [4]]);
	});

	it('writes nothing of a batch in which one id is taken by another sender, and names that id', async () => {
		const before = { rows: await rowsOf(), log: await logged() };
		const [owned] = before.rows;
		const other = randomUUID();
		const stolen: RoomEvent = { ...message('not the original', other), clientMsgId: owned!.client_msg_id };
		const innocent = message('an innocent neighbour in the same batch');
		const taken = await messages.durableAppend(
			db,
			[innocent, stolen].map((event) => ({ roomId: room.roomId, event })),
			[{ name: name(), update: new Uint8Array([9]) }],
		);
		expect(taken).toEqual(new Set([`${room.roomId} ${owned!.client_msg_id}`]));
		expect(await rowsOf()).toEqual(before.rows);
		expect(await logged()).toEqual(before.log);
	});

	it('takes one message alone: a re-send is logged without a second row, its id is refused to another', async () => {
		const alone = message('alone in its batch');
		const append = (event: RoomEvent, update: number) =>
			messages.durableAppend(
				db,
				[{ roomId: room.roomId, event }],
				[
					{
						name: name(),
						update: new Uint8Array([update]),
						writer: { roomId: room.roomId, userId: room.userId },
					},
				],
			);
		const before = { rows: await rowsOf(), log: await logged() };
		expect(await append(alone, 5)).toEqual(new Set());
		// A re-send: logged again, no second row.
		expect(await append(alone, 6)).toEqual(new Set());
		expect(await rowsOf()).toEqual([...before.rows, { client_msg_id: alone.clientMsgId, deleted_at: null }]);
		expect(await logged()).toEqual([...before.log, [5], [6]]);

		// The same id as another kind of event, or from another sender: refused, nothing written.
		const reaction: RoomEvent = {
			kind: 'reaction',
			clientMsgId: alone.clientMsgId,
			senderId: room.userId,
			targetId: alone.clientMsgId,
			emoji: '+1',
			createdAt: new Date().toISOString(),
		};
		const other = await users.create(db, `other_${randomUUID().slice(0, 8)}`, 'x');
		await rooms.addMembers(db, room.roomId, [{ userId: other.id, role: 'member' }]);
		const stolen = { ...message('not the original', other.id), clientMsgId: alone.clientMsgId };
		const taken = new Set([`${room.roomId} ${alone.clientMsgId}`]);
		expect(await append(reaction, 7)).toEqual(taken);
		expect(
			await messages.durableAppend(
				db,
				[{ roomId: room.roomId, event: stolen }],
				[{ name: name(), update: new Uint8Array([8]), writer: { roomId: room.roomId, userId: other.id } }],
			),
		).toEqual(taken);
		expect(await rowsOf()).toHaveLength(before.rows.length + 1);
		expect(await logged()).toEqual([...before.log, [5], [6]]);
	});

	it('writes nothing for a writer without a writing membership, alone or beside others, and names them', async () => {
		const member = await users.create(db, `member_${randomUUID().slice(0, 8)}`, 'x');
		const reader = await users.create(db, `reader_${randomUUID().slice(0, 8)}`, 'x');
		const stranger = await users.create(db, `stranger_${randomUUID().slice(0, 8)}`, 'x');
		await rooms.addMembers(db, room.roomId, [
			{ userId: member.id, role: 'member' },
			{ userId: reader.id, role: 'readonly' },
		]);
		const before = { rows: await rowsOf(), log: await logged() };
		const append = (...writers: string[]) =>
			messages.durableAppend(
				db,
				writers.map((userId) => ({ roomId: room.roomId, event: message(`from ${userId}`, userId) })),
				writers.map((userId, i) => ({
					name: name(),
					update: new Uint8Array([20 + i]),
					writer: { roomId: room.roomId, userId },
				})),
			);
		const refusal = (...writers: string[]) =>
			append(...writers).then(
				() => 'stored',
				(error: unknown) => (error instanceof messages.WritersRefused ? error.refused : error),
			);
		const key = (userId: string) => `${room.roomId} ${userId}`;
		expect(await refusal(stranger.id)).toEqual(new Map([[key(stranger.id), null]]));
		expect(await refusal(reader.id)).toEqual(new Map([[key(reader.id), 'readonly']]));
		expect(await refusal(member.id, reader.id, stranger.id)).toEqual(
			new Map([
				[key(reader.id), 'readonly'],
				[key(stranger.id), null],
			]),
		);
		expect(await rowsOf()).toEqual(before.rows);
		expect(await logged()).toEqual(before.log);
		// Several updates of one writer in a batch: that writer is checked once, and all of it is written.
		expect(await append(member.id, member.id)).toEqual(new Set());
		expect(await rowsOf()).toHaveLength(before.rows.length + 2);
		expect(await logged()).toEqual([...before.log, [20], [21]]);
	});

	it('marks a deleted message and its edits, also an edit that arrives after the delete', async () => {
		const target = message('to be deleted');
		const edit: RoomEvent = {
			kind: 'edit',
			clientMsgId: randomUUID(),
			senderId: room.userId,
			targetId: target.clientMsgId,
			content: 'edited before the delete',
			createdAt: new Date().toISOString(),
		};
		const del: RoomEvent = {
			kind: 'delete',
			clientMsgId: randomUUID(),
			senderId: room.userId,
			targetId: target.clientMsgId,
			createdAt: new Date().toISOString(),
		};
		const late: RoomEvent = { ...edit, clientMsgId: randomUUID(), content: 'written offline, arrives late' };
		const append = (events: RoomEvent[]) =>
			messages.durableAppend(
				db,
				events.map((event) => ({ roomId: room.roomId, event })),
				[],
			);
		await append([target, edit]);
		await append([del]);
		await append([late]);
		const deleted = new Map((await rowsOf()).map((r) => [r.client_msg_id, r.deleted_at !== null]));
		expect(deleted.get(target.clientMsgId)).toBe(true);
		expect(deleted.get(edit.clientMsgId)).toBe(true);
		expect(deleted.get(late.clientMsgId)).toBe(true);
		expect(deleted.get(del.clientMsgId)).toBe(false);
	});
});

/**
 * Compaction against appends of another node, on Postgres (where two nodes share a database). A log id comes from
 * a sequence when the row is inserted, so ids do not commit in order: an append holding a smaller id can commit
 * after a compaction read the log and before it deletes what it folded.
 */
describe.skipIf(!inject('postgresAdminUrl'))('compaction while another node appends', () => {
	it('drops exactly the updates it folded, never a later-committed one with a smaller id', async () => {
		const pgdb = await createTestDatabase();
		const db = await openDb(parseConfig({ DATABASE_URL: pgdb.url }), createLogger('silent'));
		const other = new pg.Client({ connectionString: pgdb.url });
		try {
			await migrate(db);
			const name = `room:${randomUUID()}`;
			await other.connect();
			await other.query('BEGIN');
			const late = await other.query<{ id: string }>(
				"INSERT INTO document_updates (name, update) VALUES ($1, '\\x01') RETURNING id",
				[name],
			);
			await messages.durableAppend(db, [], [{ name, update: new Uint8Array([2]) }]);

			// The other node's append commits while the compaction is between its read and its delete.
			const racing = {
				transaction: <T>(fn: (tx: Queryable) => Promise<T>) =>
					db.transaction((tx) =>
						fn({
							...tx,
							query: async (sql: string, params?: unknown[]) => {
								if (sql.includes('INSERT INTO documents')) await other.query('COMMIT');
								return tx.query(sql, params);
							},
						} as Queryable),
					),
			};
			const folded = await documents.compact(racing, name, (stored) => {
				expect(stored.updates.map((u) => [...u.update])).toEqual([[2]]);
				return new Uint8Array([0, 0]);
			});
			expect(folded).toBe(1);
			const after = await documents.load(db, name);
			expect(after.updates.map((u) => u.id)).toEqual([Number(late.rows[0]?.id)]);
			expect(after.updates.map((u) => [...u.update])).toEqual([[1]]);
		} finally {
			await other.end();
			await db.close();
			await pgdb.drop();
		}
	}, 60_000);
});

describe.skipIf(!inject('postgresAdminUrl'))('the append statement on Postgres', () => {
	it('is prepared once per connection, so each message only binds and runs it', async () => {
		const pgdb = await createTestDatabase();
		const db = await openDb(
			parseConfig({ DATABASE_URL: pgdb.url, DATABASE_POOL_SIZE: '1' }),
			createLogger('silent'),
		);
		try {
			await migrate(db);
			const seeded = await seedRoom(db, 0);
			const writer = { roomId: seeded.roomId, userId: seeded.userId };
			for (const content of ['one', 'two']) {
				const event: RoomEvent = {
					kind: 'message',
					clientMsgId: randomUUID(),
					senderId: seeded.userId,
					content,
					createdAt: new Date().toISOString(),
				};
				await messages.durableAppend(
					db,
					[{ roomId: seeded.roomId, event }],
					[{ name: `room:${seeded.roomId}`, update: new Uint8Array([1]), writer }],
				);
			}
			// The pool's one connection: its prepared statements.
			const { rows } = await db.query<{ name: string }>('SELECT name FROM pg_prepared_statements');
			expect(rows.map((r) => r.name)).toContain('chat_checked_append');
			expect((await db.query('SELECT 1 FROM messages WHERE room_id = $1', [seeded.roomId])).rowCount).toBe(2);
		} finally {
			await db.close();
			await pgdb.drop();
		}
	}, 60_000);
});

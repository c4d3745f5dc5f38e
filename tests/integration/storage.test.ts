import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, inject, it } from 'vitest';
import * as Y from 'yjs';
import { parseConfig } from '../../server/config.ts';
import { openDb } from '../../server/db/index.ts';
import { migrate, migrationsDir, MigrationError } from '../../server/db/migrate.ts';
import { createLogger } from '../../server/log.ts';
import { createTestDatabase, describeEachBackend } from '../helpers/backends.ts';
import { connect, waitFor } from '../helpers/collab.ts';
import { repoRoot } from '../helpers/process.ts';
import { startTestServer, tmpDir } from '../helpers/server.ts';

const silent = createLogger('silent');
const migrationFiles = fs.readdirSync(migrationsDir).filter((f) => f.endsWith('.sql'));

describeEachBackend('migrations', (backend) => {
	const cleanup: (() => Promise<void>)[] = [];
	afterAll(async () => {
		for (const fn of cleanup.reverse()) await fn();
	});
	const open = async () => {
		const dataDir = tmpDir('migrate');
		const pgdb = backend === 'postgres' ? await createTestDatabase() : undefined;
		const config = parseConfig({ DATA_DIR: dataDir, ...(pgdb ? { DATABASE_URL: pgdb.url } : {}) });
		const db = await openDb(config, silent);
		cleanup.push(async () => {
			await db.close();
			await pgdb?.drop();
			fs.rmSync(dataDir, { recursive: true, force: true });
		});
		return { db, config };
	};

	it('applies every migration to an empty database once, and nothing the second time', async () => {
		const { db } = await open();
		expect(await migrate(db)).toEqual(migrationFiles);
		expect(await migrate(db)).toEqual([]);
		const { rows } = await db.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
		expect(rows.map((r) => r.name)).toEqual(migrationFiles);
	});

	it('refuses a migration file that changed after it was applied', async () => {
		const { db } = await open();
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-migrations-'));
		fs.writeFileSync(path.join(dir, '0001_first.sql'), 'CREATE TABLE t1 (id int);');
		expect(await migrate(db, dir)).toEqual(['0001_first.sql']);
		fs.writeFileSync(path.join(dir, '0001_first.sql'), 'CREATE TABLE t1 (id bigint);');
		await expect(migrate(db, dir)).rejects.toBeInstanceOf(MigrationError);
		fs.writeFileSync(path.join(dir, '0001_first.sql'), 'CREATE TABLE t1 (id int);');
		fs.writeFileSync(
			path.join(dir, '0002_broken.sql'),
			'CREATE TABLE t2 (id int); SELECT * FROM missing_table;',
		);
		await expect(migrate(db, dir)).rejects.toThrow(/0002_broken.sql failed/);
		// The failed migration left nothing behind: it ran in the same transaction as its record.
		const { rows } = await db.query("SELECT 1 FROM information_schema.tables WHERE table_name = 't2'");
		expect(rows).toEqual([]);
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it('runs from `npm run migrate` and says when the database is up to date', async () => {
		const dataDir = tmpDir('migrate-cli');
		const pgdb = backend === 'postgres' ? await createTestDatabase() : undefined;
		cleanup.push(async () => {
			await pgdb?.drop();
			fs.rmSync(dataDir, { recursive: true, force: true });
		});
		const env = { PATH: process.env.PATH, DATA_DIR: dataDir, ...(pgdb ? { DATABASE_URL: pgdb.url } : {}) };
		const run = () =>
			spawnSync(process.execPath, ['server/db/migrate-cli.ts'], { cwd: repoRoot, env, encoding: 'utf8' });
		const first = run();
		expect(first.status, first.stderr).toBe(0);
		expect(first.stdout).toMatch(/Applied \d+ migration\(s\): 0001_init.sql/);
		const second = run();
		expect(second.stdout).toBe('Database is up to date.\n');
	});
});

describe('migrations from two nodes at once', () => {
	it.skipIf(!inject('postgresAdminUrl'))('apply each file exactly once under the advisory lock', async () => {
		const pgdb = await createTestDatabase();
		const config = parseConfig({ DATA_DIR: tmpDir('two-nodes'), DATABASE_URL: pgdb.url });
		const [a, b] = await Promise.all([openDb(config, silent), openDb(config, silent)]);
		try {
			const [ra, rb] = await Promise.all([migrate(a), migrate(b)]);
			expect([...ra, ...rb].sort()).toEqual(migrationFiles);
		} finally {
			await Promise.all([a.close(), b.close()]);
			await pgdb.drop();
		}
	});
});

describe('two nodes on one database', () => {
	it.skipIf(!inject('postgresAdminUrl'))(
		'never lose each other’s messages when both store and compact the same room',
		async () => {
			const pgdb = await createTestDatabase();
			// Nodes of one cluster share the signing key, as they must in production.
			const env = { COMPACT_AFTER_UPDATES: '5', JWT_SECRET: 'cluster-secret-for-this-test-0123456789' };
			const one = await startTestServer('postgres', env, { databaseUrl: pgdb.url });
			const two = await startTestServer('postgres', env, { databaseUrl: pgdb.url });
			try {
				const ana = await one.api.register('ana');
				const ben = await one.api.register('ben');
				const room = await one.api.createGroup(ana.accessToken, [ben.user.id]);
				const a = connect(one.wsUrl, room.id, ana.accessToken, ana.user.id);
				const b = connect(two.wsUrl, room.id, ben.accessToken, ben.user.id);
				for (let i = 0; i < 40; i++) {
					a.send(`ana ${i}`);
					b.send(`ben ${i}`);
					await new Promise((r) => setTimeout(r, 5));
				}
				await Promise.all([a.synced(), b.synced()]);
				a.destroy();
				b.destroy();
				// Both nodes compact on unload; wait until the log is folded.
				await waitFor(
					async () =>
						(await one.app.db.query<{ n: number }>('SELECT count(*)::int AS n FROM document_updates')).rows[0]
							?.n === 0,
					15_000,
					'both nodes to compact',
				);
				const reader = connect(two.wsUrl, room.id, ana.accessToken, ana.user.id);
				await reader.synced();
				await waitFor(
					() => reader.messages().length === 80,
					10_000,
					'all 80 messages from the stored snapshot',
				);
				reader.destroy();
				const rows = await one.app.db.query<{ n: number }>(
					'SELECT count(*)::int AS n FROM messages WHERE room_id = $1',
					[room.id],
				);
				expect(rows.rows[0]?.n).toBe(80);
			} finally {
				await one.close();
				await two.close();
				await pgdb.drop();
			}
		},
	);
});

describe('a client moving between nodes that do not share live updates', () => {
	it.skipIf(!inject('postgresAdminUrl'))(
		"is accepted with other users' entries the new node has not seen, found in the durable log",
		async () => {
			const pgdb = await createTestDatabase();
			const env = { JWT_SECRET: 'cluster-secret-for-this-test-0123456789' };
			const one = await startTestServer('postgres', env, { databaseUrl: pgdb.url });
			const two = await startTestServer('postgres', env, { databaseUrl: pgdb.url });
			try {
				const ana = await one.api.register('ana');
				const ben = await one.api.register('ben');
				const room = await one.api.createGroup(ana.accessToken, [ben.user.id]);
				// Node two holds the room open (a watcher) before Ana writes on node one: without Redis it never
				// hears of her messages.
				const watcher = connect(two.wsUrl, room.id, ben.accessToken, ben.user.id);
				await watcher.synced();
				const a = connect(one.wsUrl, room.id, ana.accessToken, ana.user.id);
				const b = connect(one.wsUrl, room.id, ben.accessToken, ben.user.id);
				for (let i = 0; i < 5; i++) a.send(`ana ${i}`);
				await a.synced();
				await waitFor(() => b.messages().length === 5, 10_000, 'Ben on node one to get Ana');
				b.provider.destroy();
				b.socket.destroy();

				// Ben's document (with Ana's entries) now syncs with node two, and he writes one of his own.
				const moved = connect(two.wsUrl, room.id, ben.accessToken, ben.user.id);
				Y.applyUpdate(moved.doc, Y.encodeStateAsUpdate(b.doc));
				moved.send('ben on node two');
				await moved.synced();
				await waitFor(() => watcher.messages().length === 6, 10_000, 'node two to hold all six');
				for (const c of [watcher, a, moved]) c.destroy();
				b.doc.destroy();
			} finally {
				await one.close();
				await two.close();
				await pgdb.drop();
			}
		},
	);
});

import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../server/config.ts';
import { openDb, type Db } from '../../server/db/index.ts';
import { migrate } from '../../server/db/migrate.ts';
import { createLogger } from '../../server/log.ts';
import * as messages from '../../server/data/messages.ts';
import { createTestDatabase } from '../helpers/backends.ts';
import { parseCsv } from '../helpers/csv.ts';
import {
	csvColumns,
	readExport,
	seededContent,
	seededCreatedAt,
	seededIndex,
	seedRoom,
	trickyContents,
	type ExportedRow,
	type SeededRoom,
	jsonlFields,
} from '../helpers/export-fixtures.ts';

const cli = fileURLToPath(new URL('../../server/export/cli.ts', import.meta.url));
const messageCount = 2_000;

interface CliResult {
	code: number | null;
	stdout: string;
	stderr: string;
}

/** Runs `npm run export`'s script as a child process, the way an operator does. */
function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
	return new Promise((resolve, reject) => {
		const child = spawn(process.execPath, [cli, ...args], {
			env: { ...process.env, LOG_LEVEL: 'warn', ...env },
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		let stdout = '';
		let stderr = '';
		child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
		child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
		child.on('error', reject);
		child.on('close', (code) => resolve({ code, stdout, stderr }));
	});
}

const workDirs: string[] = [];
function workDir(): string {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-export-cli-'));
	workDirs.push(dir);
	return dir;
}
afterAll(() => {
	for (const dir of workDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** Every row is the seeded message its createdAt names, in seq order, from the right room. */
function expectSeededRows(rows: ExportedRow[], room: SeededRoom, indexes: number[]) {
	expect(rows.map((r) => seededIndex(r.createdAt))).toEqual(indexes);
	expect(rows.map((r) => r.content)).toEqual(indexes.map(seededContent));
	expect(rows.every((r) => r.roomId === room.roomId && r.senderName === room.userName)).toBe(true);
	const seqs = rows.map((r) => r.seq);
	expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

const adminUrl = inject('postgresAdminUrl');
if (!adminUrl) {
	const message = 'Postgres is not reachable: the export CLI tests against Postgres cannot run';
	if (process.env.CI) throw new Error(`${message}, and CI requires them.`);
	console.warn(`\n!!! ${message}. SKIPPING them. Set TEST_DATABASE_URL to run them.\n`);
}

describe.skipIf(!adminUrl)('npm run export against Postgres', () => {
	let database: Awaited<ReturnType<typeof createTestDatabase>>;
	let db: Db;
	let room: SeededRoom;
	const env = () => ({ DATABASE_URL: database.url });

	const onAdmin = async (sql: string) => {
		const client = new pg.Client({ connectionString: adminUrl as string });
		await client.connect();
		try {
			await client.query(sql);
		} finally {
			await client.end();
		}
	};

	beforeAll(async () => {
		database = await createTestDatabase();
		db = await openDb(parseConfig({ DATABASE_URL: database.url }), createLogger('warn'));
		await migrate(db);
		room = await seedRoom(db, messageCount);
		// Another room's messages must never leak into this one's export.
		await seedRoom(db, 25);
	});

	afterAll(async () => {
		await db?.close();
		await database?.drop();
	});

	it('exports every message of a room as JSONL, one object per line with the documented fields', async () => {
		const dir = workDir();
		const out = path.join(dir, 'room.jsonl');
		const result = await runCli(['--room', room.roomId, '--format', 'jsonl', '--out', out], env());

		expect(result.code).toBe(0);
		expect(result.stdout).toBe('');
		expect(result.stderr).toMatch(
			new RegExp(`^Exported ${messageCount} rows to .*room\\.jsonl in \\d+\\.\\d s\\n$`),
		);
		const text = fs.readFileSync(out, 'utf8');
		expect(Object.keys(JSON.parse(text.slice(0, text.indexOf('\n'))))).toEqual(jsonlFields);
		expectSeededRows(readExport(text, 'jsonl'), room, range(1, messageCount + 1));
		expect(fs.readdirSync(dir)).toEqual(['room.jsonl']);
	});

	it('exports CSV with the header row, CRLF record ends and every tricky content intact', async () => {
		const dir = workDir();
		const out = path.join(dir, 'room.csv');
		const result = await runCli(['--room', room.roomId, '--format', 'csv', '--out', out], env());

		expect(result.code).toBe(0);
		const text = fs.readFileSync(out, 'utf8');
		expect(text.startsWith(`${csvColumns.join(',')}\r\n`)).toBe(true);
		// The parser is strict: a record ended by a bare LF, or an unterminated quote, throws.
		const records = parseCsv(text);
		expect(records).toHaveLength(messageCount + 1);
		const content = csvColumns.indexOf('content');
		for (const [k, sample] of trickyContents.entries()) {
			const i = k === 0 ? trickyContents.length : k;
			expect(records[i]?.[content]).toBe(`#${i} ${sample}`);
		}
		expectSeededRows(readExport(text, 'csv'), room, range(1, messageCount + 1));
	});

	it('keeps only the messages created at or after --since and before --until, in both formats', async () => {
		const window = ['--since', seededCreatedAt(500), '--until', seededCreatedAt(750)];
		for (const format of ['jsonl', 'csv'] as const) {
			const out = path.join(workDir(), `window.${format}`);
			const result = await runCli(
				['--room', room.roomId, '--format', format, '--out', out, ...window],
				env(),
			);
			expect(result.code).toBe(0);
			expectSeededRows(readExport(fs.readFileSync(out, 'utf8'), format), room, range(500, 750));
		}
	});

	it('empties the content of deleted messages unless --include-deleted is given', async () => {
		const small = await seedRoom(db, 3);
		const { rows } = await db.query<{ client_msg_id: string }>(
			'SELECT client_msg_id FROM messages WHERE room_id = $1 ORDER BY seq LIMIT 1',
			[small.roomId],
		);
		const targetId = rows[0]?.client_msg_id as string;
		await messages.mirror(db, [
			{
				roomId: small.roomId,
				event: {
					kind: 'delete',
					clientMsgId: randomUUID(),
					senderId: small.userId,
					targetId,
					createdAt: new Date().toISOString(),
				},
			},
		]);
		const contents = async (extra: string[]) => {
			const result = await runCli(['--room', small.roomId, '--format', 'jsonl', ...extra], env());
			expect(result.code).toBe(0);
			return readExport(result.stdout, 'jsonl').map((r) => [r.kind, r.content]);
		};
		expect(await contents([])).toEqual([
			['message', null],
			['message', seededContent(2)],
			['message', seededContent(3)],
			['delete', null],
		]);
		expect((await contents(['--include-deleted']))[0]).toEqual(['message', seededContent(1)]);
	});

	it('writes the export to stdout and only the summary to stderr when --out is not given', async () => {
		const result = await runCli(['--room', room.roomId, '--format', 'jsonl'], env());

		expect(result.code).toBe(0);
		expectSeededRows(readExport(result.stdout, 'jsonl'), room, range(1, messageCount + 1));
		expect(result.stderr).toMatch(new RegExp(`^Exported ${messageCount} rows to stdout in \\d+\\.\\d s\\n$`));
	});

	it('exits 2 with a message naming the flag when a flag is unknown, missing or malformed', async () => {
		const id = room.roomId;
		const cases: [string[], string][] = [
			[['--room', id, '--format', 'csv', '--colour'], '--colour'],
			[['--format', 'csv'], '--room'],
			[['--room', 'not-a-uuid', '--format', 'csv'], '--room'],
			[['--room', id], '--format'],
			[['--room', id, '--format', 'xml'], '--format'],
			[['--room', id, '--format', 'csv', '--out'], '--out'],
			[['--room', id, '--format', 'csv', '--since', 'yesterday'], '--since'],
			[
				['--room', id, '--format', 'csv', '--since', seededCreatedAt(9), '--until', seededCreatedAt(3)],
				'--until',
			],
		];
		const results = await Promise.all(cases.map(([args]) => runCli(args, env())));
		for (const [n, result] of results.entries()) {
			const [args, flag] = cases[n] as [string[], string];
			expect(result.code, args.join(' ')).toBe(2);
			expect(result.stderr.split('\n')[0], args.join(' ')).toContain(flag);
			expect(result.stderr).toContain('Usage: npm run export');
			expect(result.stdout).toBe('');
		}
	});

	it('exits 1 for a room that does not exist and writes no file', async () => {
		const dir = workDir();
		const missing = '00000000-0000-4000-8000-000000000000';
		const result = await runCli(
			['--room', missing, '--format', 'csv', '--out', path.join(dir, 'x.csv')],
			env(),
		);

		expect(result.code).toBe(1);
		expect(result.stderr).toBe(`export: room ${missing} not found\n`);
		expect(fs.readdirSync(dir)).toEqual([]);
	});

	it('leaves no output file, partial or complete, when the export fails after it began writing', async () => {
		// A role that may read rooms and messages but not users: the CSV header is written, then the
		// first batch (which joins users for sender names) fails.
		const role = `chat_test_ro_${randomBytes(4).toString('hex')}`;
		const password = randomBytes(12).toString('hex');
		await onAdmin(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
		try {
			await db.exec(`GRANT USAGE ON SCHEMA public TO ${role}; GRANT SELECT ON rooms, messages TO ${role};`);
			const url = new URL(database.url);
			url.username = role;
			url.password = password;
			const dir = workDir();
			const out = path.join(dir, 'room.csv');
			const result = await runCli(['--room', room.roomId, '--format', 'csv', '--out', out], {
				DATABASE_URL: url.toString(),
			});

			expect(result.code).toBe(1);
			expect(result.stderr).toMatch(/^export failed: permission denied for table users\n$/);
			expect(fs.readdirSync(dir)).toEqual([]);
		} finally {
			await db.exec(`DROP OWNED BY ${role}`);
			await onAdmin(`DROP ROLE ${role}`);
		}
	});

	it('tells the operator to migrate, and creates nothing, when the database was never migrated', async () => {
		const empty = await createTestDatabase();
		try {
			const result = await runCli(['--room', room.roomId, '--format', 'csv'], { DATABASE_URL: empty.url });
			expect(result.code).toBe(1);
			expect(result.stderr).toBe('export: database not initialised; run npm run migrate\n');
			const client = new pg.Client({ connectionString: empty.url });
			await client.connect();
			try {
				const { rows } = await client.query("SELECT to_regclass('schema_migrations') AS t");
				expect(rows[0].t).toBeNull();
			} finally {
				await client.end();
			}
		} finally {
			await empty.drop();
		}
	});
});

describe('npm run export on the embedded database', () => {
	it('exports from PGlite under DATA_DIR when DATABASE_URL is unset', async () => {
		const dataDir = workDir();
		const config = parseConfig({ DATA_DIR: dataDir });
		const db = await openDb(config, createLogger('warn'));
		let room: SeededRoom;
		try {
			await migrate(db);
			room = await seedRoom(db, 40);
		} finally {
			await db.close();
		}
		const out = path.join(dataDir, 'room.csv');
		const result = await runCli(['--room', room.roomId, '--format', 'csv', '--out', out], {
			DATABASE_URL: '',
			DATA_DIR: dataDir,
		});

		expect(result.stderr).toMatch(/^Exported 40 rows to /);
		expect(result.code).toBe(0);
		expectSeededRows(readExport(fs.readFileSync(out, 'utf8'), 'csv'), room, range(1, 41));
	});

	it('says the running server holds DATA_DIR, and how to get round it, when another process has it locked', async () => {
		const dataDir = workDir();
		// This test process stands in for the running server: it is alive, so the lock is not stale.
		fs.writeFileSync(path.join(dataDir, 'server.lock'), String(process.pid));
		const out = path.join(dataDir, 'room.csv');
		const result = await runCli(
			['--room', '00000000-0000-4000-8000-000000000000', '--format', 'csv', '--out', out],
			{ DATABASE_URL: '', DATA_DIR: dataDir },
		);

		expect(result.code).toBe(1);
		expect(result.stderr).toBe(
			`export: the running server holds the embedded database in DATA_DIR ${dataDir}: ` +
				'stop the server and run the export again, or set DATABASE_URL to export from Postgres instead\n',
		);
		expect(fs.existsSync(out)).toBe(false);
	});
});

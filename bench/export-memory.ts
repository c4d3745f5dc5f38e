import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { parseConfig } from '../server/config.ts';
import { openDb } from '../server/db/index.ts';
import { migrate } from '../server/db/migrate.ts';
import type { ExportFormat } from '../server/export/stream.ts';
import { createLogger } from '../server/log.ts';
import { readExport, seededContent, seededIndex, seedRoom } from '../tests/helpers/export-fixtures.ts';

/**
 * `npm run bench:export`: is the export's memory constant in the room's size? Exports a room of
 * 100,000 mirrored messages and one of 1,000, in both formats, each run in a fresh process through
 * the export CLI, and compares the processes' peak RSS. Every output is parsed back and checked.
 * Uses a throwaway database `chat_bench_<random>` on DATABASE_URL (an admin connection), dropped at
 * the end whatever happens. Exits 1 when an output is wrong or the difference passes 50 MB.
 */

const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const sizes = [1_000, 100_000] as const;
const formats = ['jsonl', 'csv'] as const satisfies readonly ExportFormat[];
const repeats = 3;
const boundMb = 50;
const childScript = fileURLToPath(new URL('./export-child.ts', import.meta.url));
const resultsFile = fileURLToPath(new URL('./results/export-memory.json', import.meta.url));

interface Run {
	format: ExportFormat;
	rows: number;
	repeat: number;
	peakRssMb: number;
	seconds: number;
	problems: string[];
}

const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
const median = (values: number[]) =>
	[...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

async function onAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
	const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5_000 });
	await client.connect();
	try {
		return await fn(client);
	} finally {
		await client.end();
	}
}

/** Runs one export in a fresh process; the child reports its peak RSS on fd 3. */
function runExport(
	args: string[],
	databaseUrl: string,
): Promise<{ exitCode: number; maxRssKb: number; seconds: number; stderr: string }> {
	return new Promise((resolve, reject) => {
		const child = spawn(process.execPath, [childScript, ...args], {
			stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
			env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
		});
		let stderr = '';
		let report = '';
		child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
		(child.stdio[3] as NodeJS.ReadableStream).setEncoding('utf8').on('data', (s: string) => (report += s));
		child.on('error', reject);
		child.on('close', (code) => {
			try {
				resolve({
					...(JSON.parse(report) as { exitCode: number; maxRssKb: number; seconds: number }),
					stderr,
				});
			} catch {
				reject(new Error(`export child exited ${code} without a report: ${stderr.trim()}`));
			}
		});
	});
}

/** Parses an output back and checks every row: count, order, room and exact content. */
function validate(
	file: string,
	format: ExportFormat,
	roomId: string,
	expected: number,
	stderr: string,
): string[] {
	const problems: string[] = [];
	let rows;
	try {
		rows = readExport(fs.readFileSync(file, 'utf8'), format);
	} catch (error) {
		return [`does not parse: ${(error as Error).message}`];
	}
	if (rows.length !== expected) problems.push(`${rows.length} rows instead of ${expected}`);
	let previousSeq = 0;
	for (const row of rows) {
		if (!(row.seq > previousSeq)) problems.push(`seq ${row.seq} is not after ${previousSeq}`);
		if (row.roomId !== roomId) problems.push(`row ${row.seq} belongs to room ${row.roomId}`);
		const want = seededContent(seededIndex(row.createdAt));
		if (row.content !== want) problems.push(`row ${row.seq}: content ${JSON.stringify(row.content)}`);
		previousSeq = row.seq;
		if (problems.length > 5) break;
	}
	if (!stderr.includes(`Exported ${expected} rows to `))
		problems.push(`unexpected summary: ${stderr.trim()}`);
	return problems;
}

async function bench(databaseUrl: string, workDir: string): Promise<Run[]> {
	const db = await openDb(parseConfig({ DATABASE_URL: databaseUrl }), createLogger('warn'));
	const roomsBySize = new Map<number, string>();
	try {
		await migrate(db);
		for (const size of sizes) {
			const started = performance.now();
			roomsBySize.set(size, (await seedRoom(db, size)).roomId);
			console.error(`seeded ${size} messages in ${((performance.now() - started) / 1000).toFixed(1)} s`);
		}
		await db.query('ANALYZE messages');
	} finally {
		await db.close();
	}

	const runs: Run[] = [];
	// Cases interleaved per repeat, so a noisy moment on the machine does not land on one case only.
	for (let repeat = 1; repeat <= repeats; repeat++) {
		for (const size of sizes) {
			for (const format of formats) {
				const roomId = roomsBySize.get(size) as string;
				const out = path.join(workDir, `room-${size}.${format}`);
				const result = await runExport(['--room', roomId, '--format', format, '--out', out], databaseUrl);
				const problems =
					result.exitCode === 0
						? validate(out, format, roomId, size, result.stderr)
						: [`exited ${result.exitCode}: ${result.stderr.trim()}`];
				fs.rmSync(out, { force: true });
				const run = {
					format,
					rows: size,
					repeat,
					peakRssMb: mb(result.maxRssKb),
					seconds: result.seconds,
					problems,
				};
				runs.push(run);
				console.error(
					`run ${repeat}/${repeats} ${format} ${size} rows: peak RSS ${run.peakRssMb} MB, ${run.seconds.toFixed(2)} s` +
						(problems.length ? ` INVALID: ${problems.join('; ')}` : ''),
				);
			}
		}
	}
	return runs;
}

function summarise(runs: Run[], postgresVersion: string) {
	const cases = formats.flatMap((format) =>
		sizes.map((rows) => {
			const mine = runs.filter((r) => r.format === format && r.rows === rows);
			return {
				format,
				rows,
				peakRssMb: median(mine.map((r) => r.peakRssMb)),
				peakRssMbRuns: mine.map((r) => r.peakRssMb),
				seconds: Math.round(median(mine.map((r) => r.seconds)) * 100) / 100,
				valid: mine.every((r) => r.problems.length === 0),
			};
		}),
	);
	const differences = formats.map((format) => {
		const [small, large] = sizes.map(
			(rows) => cases.find((c) => c.format === format && c.rows === rows)?.peakRssMb as number,
		) as [number, number];
		const differenceMb = Math.round((large - small) * 10) / 10;
		return { format, differenceMb, withinBound: differenceMb <= boundMb };
	});
	const ok = cases.every((c) => c.valid) && differences.every((d) => d.withinBound);
	return {
		ranAt: new Date().toISOString(),
		machine: {
			cpus: os.cpus().length,
			cpuModel: os.cpus()[0]?.model ?? 'unknown',
			totalMemoryMb: Math.round(os.totalmem() / 2 ** 20),
			node: process.version,
			postgres: postgresVersion,
		},
		repeats,
		boundMb,
		cases,
		differences,
		runs,
		ok,
	};
}

function markdown(summary: ReturnType<typeof summarise>): string {
	const lines = [
		`| format | rows | peak RSS, median of ${repeats} (MB) | runs (MB) | wall time, median (s) | output valid |`,
		'| --- | ---: | ---: | --- | ---: | --- |',
		...summary.cases.map(
			(c) =>
				`| ${c.format} | ${c.rows.toLocaleString('en')} | ${c.peakRssMb.toFixed(1)} | ${c.peakRssMbRuns.join(', ')} | ${c.seconds.toFixed(2)} | ${c.valid ? 'yes' : 'NO'} |`,
		),
		'',
		`| format | peak RSS 100,000 − 1,000 rows (MB) | within ${boundMb} MB |`,
		'| --- | ---: | --- |',
		...summary.differences.map(
			(d) => `| ${d.format} | ${d.differenceMb.toFixed(1)} | ${d.withinBound ? 'yes' : 'NO'} |`,
		),
	];
	return lines.join('\n');
}

const databaseName = `chat_bench_${randomBytes(6).toString('hex')}`;
let created = false;
let dropping: Promise<void> | undefined;
/** Idempotent: the normal path and a Ctrl-C may both ask for it. */
const dropDatabase = async () => {
	if (!created) return;
	await (dropping ??= onAdmin(async (c) => {
		await c.query(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`);
	}));
};

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-bench-export-'));
const onSignal = () => {
	console.error('\ninterrupted: dropping the benchmark database');
	fs.rmSync(workDir, { recursive: true, force: true });
	void dropDatabase().finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

let exitCode = 1;
try {
	const postgresVersion = await onAdmin(async (c) => {
		await c.query(`CREATE DATABASE ${databaseName}`);
		created = true;
		return (await c.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? '?';
	});
	const url = new URL(adminUrl);
	url.pathname = `/${databaseName}`;
	const summary = summarise(await bench(url.toString(), workDir), postgresVersion);

	fs.mkdirSync(path.dirname(resultsFile), { recursive: true });
	fs.writeFileSync(resultsFile, `${JSON.stringify(summary, null, '\t')}\n`);
	console.log(`\n${markdown(summary)}\n`);
	console.log(
		`${os.cpus().length} CPUs, Node ${process.version}, Postgres ${postgresVersion}. ` +
			`Results written to ${path.relative(process.cwd(), resultsFile)}.`,
	);
	if (!summary.ok) console.error('FAILED: an export was invalid or memory grew with the room size.');
	exitCode = summary.ok ? 0 : 1;
} catch (error) {
	console.error(`benchmark failed: ${(error as Error).message}`);
} finally {
	fs.rmSync(workDir, { recursive: true, force: true });
	await dropDatabase().catch((error: Error) =>
		console.error(`could not drop ${databaseName}: ${error.message}; drop it by hand`),
	);
}
process.exitCode = exitCode;

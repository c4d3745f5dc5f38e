import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { exportQuery } from '#protocol/api.ts';
import { uuid } from '#protocol/ids.ts';
import { ConfigError, parseConfig, type Config } from '../config.ts';
import * as messages from '../data/messages.ts';
import * as rooms from '../data/rooms.ts';
import { openDb, type Db } from '../db/index.ts';
import { DataDirLockedError } from '../db/pglite.ts';
import { createLogger } from '../log.ts';
import { exportRoom } from './stream.ts';

/**
 * `npm run export -- --room <uuid> --format jsonl|csv [--out file] [--since ISO] [--until ISO]`:
 * a room's mirrored messages in the same format as `GET /api/rooms/:id/export`, read straight from
 * the database (no server, no membership check: whoever holds the database credentials may read it all).
 */

const exitCodes = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

const usage = `Usage: npm run export -- --room <uuid> --format jsonl|csv [--out <file>] [--since <ISO>] [--until <ISO>] [--include-deleted]

Exports one room's mirrored messages from DATABASE_URL, or from the embedded database in DATA_DIR.
  --room <uuid>     the room to export
  --format <f>      jsonl (one JSON object per line) or csv (RFC 4180, CRLF, header row)
  --out <file>      write here (complete or not at all); default: stdout
  --since <ISO>     only messages created at or after this time, e.g. 2024-05-01T00:00:00Z
  --until <ISO>     only messages created before this time
  --include-deleted keep the content of deleted messages (an audit export; it is empty otherwise)
  -h, --help        show this help
`;

class UsageError extends Error {
	readonly code = 'usage';
}

class ExportError extends Error {
	readonly code: 'room_not_found' | 'not_initialised' | 'data_dir_locked';
	constructor(code: ExportError['code'], message: string) {
		super(message);
		this.code = code;
	}
}

/** The HTTP export's rules for format/since/until, with the room and the output file on top. */
const cliOptions = z
	.strictObject({
		room: uuid,
		format: exportQuery.shape.format.unwrap(),
		out: z.string().min(1).optional(),
		since: exportQuery.shape.since,
		until: exportQuery.shape.until,
		includeDeleted: z.boolean(),
	})
	.refine((o) => !o.since || !o.until || Date.parse(o.since) < Date.parse(o.until), {
		path: ['until'],
		message: '--until must be later than --since',
	});
type CliOptions = z.infer<typeof cliOptions>;

const hints: Record<string, string> = {
	room: 'expected a room id (uuid)',
	format: 'expected jsonl or csv',
	since: 'expected an ISO-8601 time with an offset, e.g. 2024-05-01T00:00:00Z',
	until: 'expected an ISO-8601 time with an offset, e.g. 2024-05-01T00:00:00Z',
};

function parseOptions(argv: string[]): CliOptions | 'help' {
	let values: Record<string, string | boolean | undefined>;
	try {
		({ values } = parseArgs({
			args: argv,
			strict: true,
			allowPositionals: false,
			options: {
				room: { type: 'string' },
				format: { type: 'string' },
				out: { type: 'string' },
				since: { type: 'string' },
				until: { type: 'string' },
				'include-deleted': { type: 'boolean', default: false },
				help: { type: 'boolean', short: 'h' },
			},
		}));
	} catch (error) {
		// parseArgs's own messages already name the flag ("Unknown option '--rom'").
		throw new UsageError((error as Error).message);
	}
	if (values.help) return 'help';
	const flags = {
		room: values.room,
		format: values.format,
		out: values.out,
		since: values.since,
		until: values.until,
		includeDeleted: values['include-deleted'],
	};
	const result = cliOptions.safeParse(flags);
	if (result.success) return result.data;
	const problems = result.error.issues.map((issue) => {
		const flag = String(issue.path[0]);
		const given = flags[flag as keyof typeof flags];
		if (given === undefined) return `--${flag} is required`;
		if (issue.code === 'custom') return issue.message;
		return `--${flag}: ${hints[flag] ?? issue.message} (got "${String(given)}")`;
	});
	throw new UsageError(problems.join('; '));
}

/**
 * Rows done / total, percent and rate on one stderr line, redrawn at most every 100 ms so a fast
 * export does not spend its time painting. Off a TTY it stays silent until the summary.
 */
class Progress {
	#done = 0;
	#lastDraw = 0;
	readonly #started = performance.now();
	readonly #total: number;
	readonly #stream: NodeJS.WriteStream | null;

	constructor(total: number, tty: NodeJS.WriteStream | null) {
		this.#total = total;
		this.#stream = tty;
	}

	get rows() {
		return this.#done;
	}

	add(rows: number) {
		this.#done += rows;
		const now = performance.now();
		if (this.#stream && now - this.#lastDraw >= 100) {
			this.#lastDraw = now;
			this.#draw(now);
		}
	}

	/** The final bar (on a TTY) and the one-line summary. */
	finish(target: string) {
		const now = performance.now();
		if (this.#stream) {
			this.#draw(now);
			this.#stream.write('\n');
		}
		const seconds = ((now - this.#started) / 1000).toFixed(1);
		process.stderr.write(`Exported ${this.#done} rows to ${target} in ${seconds} s\n`);
	}

	/** Leaves the cursor on a fresh line so an error message does not land on the bar. */
	abandon() {
		if (this.#stream && this.#lastDraw > 0) this.#stream.write('\n');
	}

	#draw(now: number) {
		const stream = this.#stream as NodeJS.WriteStream;
		// Rows mirrored while the export runs are exported too (keyset pagination), so done may pass total.
		const ratio = this.#total > 0 ? Math.min(1, this.#done / this.#total) : 1;
		const rate = Math.round(this.#done / Math.max((now - this.#started) / 1000, 0.001));
		const text = ` ${String(Math.floor(ratio * 100)).padStart(3)}% ${this.#done}/${this.#total} rows ${rate} rows/s`;
		const width = Math.max(10, Math.min(40, (stream.columns || 80) - text.length - 3));
		const filled = Math.round(ratio * width);
		stream.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]${text}\x1b[K`);
	}
}

/**
 * Writes to a temporary file beside `out` and renames it into place only when the export completed,
 * so a failed or interrupted export never leaves a file that looks complete.
 */
async function writeFileAtomically(source: Readable, out: string, signal: AbortSignal): Promise<void> {
	const target = path.resolve(out);
	const temporary = path.join(
		path.dirname(target),
		`.${path.basename(target)}.${randomBytes(4).toString('hex')}.partial`,
	);
	try {
		// flush: fsync before close, so the rename never publishes a file whose data is not on disk.
		await pipeline(source, fs.createWriteStream(temporary, { flags: 'wx', flush: true }), { signal });
		await fs.promises.rename(temporary, target);
	} catch (error) {
		await fs.promises.rm(temporary, { force: true });
		throw error;
	}
}

async function openDatabase(config: Config): Promise<Db> {
	// Logs go to stderr: stdout may be carrying the export itself.
	const log = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, process.stderr);
	try {
		return await openDb(config, log);
	} catch (error) {
		if (error instanceof DataDirLockedError) {
			// Not the server's own advice ("give this one its own DATA_DIR"): an export needs the data there.
			throw new ExportError(
				'data_dir_locked',
				`the running server holds the embedded database in DATA_DIR ${config.DATA_DIR}: ` +
					'stop the server and run the export again, or set DATABASE_URL to export from Postgres instead',
			);
		}
		throw error;
	}
}

async function exportTo(db: Db, options: CliOptions, signal: AbortSignal): Promise<void> {
	// The export only reads: a missing schema means the wrong database, not one to set up from here.
	const { rows } = await db.query<{ ok: boolean }>("SELECT to_regclass('messages') IS NOT NULL AS ok");
	if (!rows[0]?.ok) throw new ExportError('not_initialised', 'database not initialised; run npm run migrate');
	if (!(await rooms.exists(db, options.room))) {
		throw new ExportError('room_not_found', `room ${options.room} not found`);
	}

	// A bar on the terminal, unless the export itself is being printed there.
	const showBar = process.stderr.isTTY && (options.out !== undefined || !process.stdout.isTTY);
	const query = { roomId: options.room, since: options.since, until: options.until };
	const progress = new Progress(
		showBar ? await messages.count(db, query) : 0,
		showBar ? process.stderr : null,
	);
	// One batch in flight at a time: the writer's backpressure reaches the database query loop.
	const source = Readable.from(
		exportRoom(db, { ...query, format: options.format, includeDeleted: options.includeDeleted }, (n) =>
			progress.add(n),
		),
		{ highWaterMark: 1 },
	);
	try {
		if (options.out !== undefined) await writeFileAtomically(source, options.out, signal);
		else await pipeline(source, process.stdout as Writable, { signal });
	} catch (error) {
		progress.abandon();
		throw error;
	}
	progress.finish(options.out ?? 'stdout');
}

async function main(argv: string[]): Promise<number> {
	let options: CliOptions | 'help';
	try {
		options = parseOptions(argv);
	} catch (error) {
		if (!(error instanceof UsageError)) throw error;
		process.stderr.write(`export: ${error.message}\n\n${usage}`);
		return exitCodes.usage;
	}
	if (options === 'help') {
		process.stdout.write(usage);
		return exitCodes.ok;
	}

	let config: Config;
	try {
		config = parseConfig(process.env);
	} catch (error) {
		if (!(error instanceof ConfigError)) throw error;
		process.stderr.write(`Configuration error:\n${error.message}\n`);
		return exitCodes.failed;
	}

	// Ctrl-C stops the pipeline, which removes the partial file, and the database is still closed.
	const interrupt = new AbortController();
	const onSignal = () => interrupt.abort();
	process.once('SIGINT', onSignal);
	process.once('SIGTERM', onSignal);
	try {
		const db = await openDatabase(config);
		try {
			await exportTo(db, options, interrupt.signal);
		} finally {
			await db.close();
		}
		return exitCodes.ok;
	} catch (error) {
		if (interrupt.signal.aborted) {
			process.stderr.write(
				`export: interrupted${options.out === undefined ? '' : '; no output file was written'}\n`,
			);
			return exitCodes.interrupted;
		}
		if ((error as NodeJS.ErrnoException).code === 'EPIPE') {
			process.stderr.write('export: the output was closed before the export finished\n');
		} else if (error instanceof ExportError) {
			process.stderr.write(`export: ${error.message}\n`);
		} else {
			process.stderr.write(`export failed: ${(error as Error).message}\n`);
		}
		return exitCodes.failed;
	} finally {
		process.off('SIGINT', onSignal);
		process.off('SIGTERM', onSignal);
	}
}

process.exitCode = await main(process.argv.slice(2));

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
import type { BlobStore } from '../files/blob-store.ts';
import { openBlobStore } from '../files/open.ts';
import { createLogger } from '../log.ts';
import { FileCopier } from './files.ts';
import { Progress } from './progress.ts';
import { exportRoom } from './stream.ts';

/**
 * `npm run export -- --room <uuid> --format jsonl|csv [--out file] [--since ISO] [--until ISO] [--with-files]`:
 * a room's mirrored messages in the same format as `GET /api/rooms/:id/export`, read straight from
 * the database (no server, no membership check: whoever holds the database credentials may read it all).
 * `--with-files` also copies the bytes of every file they list from the blob store (files.ts).
 */

/** `incomplete`: the export was written, but some files it lists could not be copied (`--with-files`). */
const exitCodes = { ok: 0, failed: 1, usage: 2, incomplete: 3, interrupted: 130 } as const;

const usage = `Usage: npm run export -- --room <uuid> --format jsonl|csv [--out <file>] [--since <ISO>] [--until <ISO>] [--include-deleted] [--with-files]

Exports one room's mirrored messages from DATABASE_URL, or from the embedded database in DATA_DIR.
  --room <uuid>     the room to export
  --format <f>      jsonl (one JSON object per line) or csv (RFC 4180, CRLF, header row)
  --out <file>      write here (complete or not at all); default: stdout
  --since <ISO>     only messages created at or after this time, e.g. 2024-05-01T00:00:00Z
  --until <ISO>     only messages created before this time
  --include-deleted keep the content (and files) of deleted messages (an audit export; empty otherwise)
  --with-files      also copy every listed file into <out>-files/, each as <id>-<name> (needs --out; the
                    blob store is the server's: S3_* when S3_BUCKET is set, else DATA_DIR/files). A file
                    the store does not hold is reported and skipped; the exit status is then 3
  -h, --help        show this help
`;

class UsageError extends Error {
	readonly code = 'usage';
}

class ExportError extends Error {
	readonly code: 'room_not_found' | 'not_initialised' | 'data_dir_locked' | 'no_blob_store';
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
		withFiles: z.boolean(),
	})
	.refine((o) => !o.since || !o.until || Date.parse(o.since) < Date.parse(o.until), {
		path: ['until'],
		message: '--until must be later than --since',
	})
	.refine((o) => !o.withFiles || o.out !== undefined, {
		path: ['withFiles'],
		message: '--with-files needs --out: the files go into a directory beside it (<out>-files/)',
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
				'with-files': { type: 'boolean', default: false },
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
		withFiles: values['with-files'],
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

/**
 * The configured blob store (the server's: S3 when S3_BUCKET is set, else DATA_DIR/files), opened when the first
 * file is copied. A disk store that does not exist means the export was not given the server's DATA_DIR: said so,
 * rather than reporting every file as missing.
 */
function blobStoreOf(config: Config): { get(): BlobStore; close(): void } {
	let store: BlobStore | undefined;
	return {
		get() {
			if (store) return store;
			const dir = path.resolve(config.DATA_DIR, 'files');
			if (!config.S3_BUCKET && !fs.existsSync(dir)) {
				throw new ExportError(
					'no_blob_store',
					`no stored files under ${dir}: set DATA_DIR to the server's, or S3_BUCKET and the other S3_* ` +
						'settings if the server keeps its files in a bucket',
				);
			}
			return (store = openBlobStore(config));
		},
		close() {
			// The S3 client's sockets would keep the process alive.
			(store as { close?: () => void } | undefined)?.close?.();
		},
	};
}

/** Where `--with-files` writes: a directory beside the export, named after it. */
const filesDirOf = (out: string) => `${path.resolve(out)}-files`;

/** Resolves `incomplete` when the export was written but some of its files could not be copied. */
async function exportTo(
	db: Db,
	config: Config,
	options: CliOptions,
	signal: AbortSignal,
): Promise<'ok' | 'incomplete'> {
	// The export only reads: a missing schema means the wrong database, not one to set up from here.
	const { rows } = await db.query<{ ok: boolean; current: boolean }>(
		`SELECT to_regclass('messages') IS NOT NULL AS ok, EXISTS (SELECT 1 FROM information_schema.columns
		 WHERE table_schema = current_schema() AND table_name = 'messages' AND column_name = 'attachments') AS current`,
	);
	if (!rows[0]?.ok) throw new ExportError('not_initialised', 'database not initialised; run npm run migrate');
	if (!rows[0].current) {
		throw new ExportError('not_initialised', 'database has migrations still to apply; run npm run migrate');
	}
	if (!(await rooms.exists(db, options.room))) {
		throw new ExportError('room_not_found', `room ${options.room} not found`);
	}

	// A bar on the terminal, unless the export itself is being printed there.
	const showBar = process.stderr.isTTY && (options.out !== undefined || !process.stdout.isTTY);
	const query = { roomId: options.room, since: options.since, until: options.until };
	const store = blobStoreOf(config);
	const files =
		options.withFiles && options.out !== undefined
			? new FileCopier({
					dir: filesDirOf(options.out),
					store: () => store.get(),
					signal,
					report: (line) => progress.note(line),
					onFile: () => progress.file(),
				})
			: null;
	const progress = new Progress(
		showBar ? await messages.count(db, query) : 0,
		showBar ? process.stderr : null,
		files,
	);
	// One batch in flight at a time: the writer's backpressure reaches the database query loop, and a batch's
	// files are copied before the next batch is read.
	const source = Readable.from(
		exportRoom(
			db,
			{ ...query, format: options.format, includeDeleted: options.includeDeleted },
			async (batch) => {
				await files?.copy(batch);
				progress.add(batch.length);
			},
		),
		{ highWaterMark: 1 },
	);
	try {
		if (options.out !== undefined) await writeFileAtomically(source, options.out, signal);
		else await pipeline(source, process.stdout as Writable, { signal });
	} catch (error) {
		progress.abandon();
		throw error;
	} finally {
		store.close();
	}
	progress.finish(options.out ?? 'stdout');
	return files && files.stats.missing > 0 ? 'incomplete' : 'ok';
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
		let outcome: 'ok' | 'incomplete';
		try {
			outcome = await exportTo(db, config, options, interrupt.signal);
		} finally {
			await db.close();
		}
		return exitCodes[outcome];
	} catch (error) {
		if (interrupt.signal.aborted) {
			const kept = options.withFiles && options.out !== undefined ? filesDirOf(options.out) : null;
			process.stderr.write(
				`export: interrupted${options.out === undefined ? '' : '; no output file was written'}` +
					`${kept ? ` (the files copied so far stay in ${kept})` : ''}\n`,
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

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, parseConfig, type Config } from '../config.ts';
import { openDb, type Db } from '../db/index.ts';
import { DataDirLockedError } from '../db/pglite.ts';
import { createLogger } from '../log.ts';
import type { BlobStore } from './blob-store.ts';
import { FileCollector, type CollectSummary, type UploadsHeld } from './collect.ts';
import { openBlobStore } from './open.ts';
import { PartialUploads } from './partials.ts';
import { megabytes } from './uploads.ts';

/**
 * `node scripts/with-node.mjs server/files/collect-cli.ts`: one garbage collection pass of attachments now
 * (collect.ts), with the server's settings: the database (DATABASE_URL, or the embedded one in DATA_DIR), the blob
 * store (S3_* when S3_BUCKET is set, else DATA_DIR/files) and ATTACHMENT_GC_GRACE_HOURS. The servers do the same
 * every ATTACHMENT_GC_INTERVAL_MINUTES; this is for an operator who wants the space back now.
 */

const exitCodes = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

const usage = `Usage: node scripts/with-node.mjs server/files/collect-cli.ts

Runs one garbage collection pass of attachments now, with the server's environment (DATABASE_URL or DATA_DIR,
S3_*, ATTACHMENT_GC_GRACE_HOURS): uploads never finished and files never sent (after the grace period), files
of deleted messages, and every blob no file uses any more. Partial uploads are looked at in DATA_DIR/uploads.
When a server is collecting at that moment, this pass is skipped.
  -h, --help  show this help
`;

class CollectError extends Error {}

async function openDatabase(config: Config): Promise<Db> {
	const log = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, process.stderr);
	try {
		return await openDb(config, log);
	} catch (error) {
		if (!(error instanceof DataDirLockedError)) throw error;
		throw new CollectError(
			`the running server holds the embedded database in DATA_DIR ${config.DATA_DIR}, and collects every ` +
				'ATTACHMENT_GC_INTERVAL_MINUTES by itself: stop it to collect now',
		);
	}
}

/** The server's blob store; a disk store that is not there means this is not the server's DATA_DIR. */
function blobStoreOf(config: Config): BlobStore {
	const dir = path.resolve(config.DATA_DIR, 'files');
	if (!config.S3_BUCKET && !fs.existsSync(dir))
		throw new CollectError(
			`no stored files under ${dir}: set DATA_DIR to the server's, or S3_BUCKET and the other S3_* settings ` +
				'if the server keeps its files in a bucket',
		);
	return openBlobStore(config);
}

/** This machine's partial uploads, when it has the server's DATA_DIR/uploads (a node's own, not shared). */
function uploadsOf(config: Config): UploadsHeld {
	const dir = path.resolve(config.DATA_DIR, 'uploads');
	if (fs.existsSync(dir)) return new PartialUploads(dir);
	return { list: async () => [], remove: async () => null };
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function describe(s: CollectSummary): string {
	const rows = `${plural(s.collected.abandoned, 'abandoned upload')}, ${plural(s.collected.unsent, 'file')} never sent, ${plural(s.collected.deleted, 'file')} of deleted messages`;
	const freed =
		`${plural(s.blobs, 'blob')} deleted (${megabytes(s.blobBytes)}), ` +
		`${plural(s.partials, 'partial upload')} removed (${megabytes(s.partialBytes)})`;
	const skipped = s.skipped
		? 'another node was collecting: only the partial uploads here were looked at; '
		: `collected ${rows}; `;
	return `${skipped}${freed} in ${(s.ms / 1000).toFixed(1)} s${s.finished ? '' : '; more is left for the next pass'}\n`;
}

async function main(argv: string[]): Promise<number> {
	try {
		const { values } = parseArgs({
			args: argv,
			strict: true,
			options: { help: { type: 'boolean', short: 'h' } },
		});
		if (values.help) {
			process.stdout.write(usage);
			return exitCodes.ok;
		}
	} catch (error) {
		process.stderr.write(`files:collect: ${(error as Error).message}\n\n${usage}`);
		return exitCodes.usage;
	}
	let config: Config;
	try {
		config = parseConfig(process.env);
	} catch (error) {
		if (!(error instanceof ConfigError)) throw error;
		process.stderr.write(`Configuration error:\n${error.message}\n`);
		return exitCodes.failed;
	}
	let interrupted = false;
	let collector: FileCollector | undefined;
	const onSignal = () => {
		interrupted = true;
		void collector?.stop();
	};
	process.once('SIGINT', onSignal);
	process.once('SIGTERM', onSignal);
	let db: Db | undefined;
	let blobs: BlobStore | undefined;
	try {
		db = await openDatabase(config);
		const { rows } = await db.query<{ ready: boolean }>(
			"SELECT to_regclass('messages_attachment_ids_idx') IS NOT NULL AS ready",
		);
		if (!rows[0]?.ready)
			throw new CollectError(
				'the database has migrations still to apply (or is not the server’s): run npm run migrate',
			);
		blobs = blobStoreOf(config);
		const log = createLogger('silent');
		collector = new FileCollector(
			{ db, blobs, partials: uploadsOf(config), log },
			{ graceMs: config.ATTACHMENT_GC_GRACE_HOURS * 3_600_000, intervalMs: 0 },
		);
		const summary = await collector.collect();
		process.stdout.write(describe(summary));
		return interrupted ? exitCodes.interrupted : exitCodes.ok;
	} catch (error) {
		const message = error instanceof CollectError ? error.message : `failed: ${(error as Error).message}`;
		process.stderr.write(`files:collect: ${message}\n`);
		return exitCodes.failed;
	} finally {
		process.off('SIGINT', onSignal);
		process.off('SIGTERM', onSignal);
		(blobs as { close?: () => void } | undefined)?.close?.();
		await db?.close();
	}
}

process.exitCode = await main(process.argv.slice(2));

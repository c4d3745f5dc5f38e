import type { Logger } from 'pino';
import * as gc from '../data/attachment-gc.ts';
import type { Db } from '../db/index.ts';
import type { Metrics } from '../metrics.ts';
import { deleteIfUnused } from './blob-locks.ts';
import type { BlobStore } from './blob-store.ts';
import type { PartialUploads } from './partials.ts';

/** The partial uploads a collector looks through (`PartialUploads`, or none where a node's are not at hand). */
export type UploadsHeld = Pick<PartialUploads, 'list' | 'remove'>;

/** Why an attachment was collected (the `reason` of `chat_attachments_collected_total`). */
export type CollectReason = 'abandoned' | 'unsent' | 'deleted';

export interface CollectSummary {
	/** Another pass held the lock (on this node or another): only this node's left-over uploads were looked at. */
	skipped: boolean;
	/** Attachment rows deleted, by reason. */
	collected: Record<CollectReason, number>;
	/** Blobs deleted from the blob store (files and thumbnails), and their bytes. */
	blobs: number;
	blobBytes: number;
	/** Partial uploads removed from this node's `DATA_DIR/uploads`, and their bytes. */
	partials: number;
	partialBytes: number;
	/** False when the pass stopped at its bound (or for a shutdown): the rest is left to the next pass. */
	finished: boolean;
	ms: number;
}

export interface CollectorOptions {
	/** An upload unfinished, or a stored file in no message, this long after it began (finished) is collected. */
	graceMs: number;
	/** Between passes; 0: none but those `collect()` runs. */
	intervalMs: number;
	/** Rows per statement. */
	batchSize?: number;
	/**
	 * At most this many abandoned uploads deleted, stored files looked at for being unsent, and deleted messages
	 * looked at for their files, per pass.
	 */
	maxRowsPerPass?: number;
}

/** The pass lock (`pg_try_advisory_xact_lock(bigint)`), beside the migrations' 4_242_001. */
const PASS_LOCK_KEY = 4_242_002;
/** Blobs checked against the database at a time, as the store lists them. */
const WALK_CHUNK = 1000;
/** The databases a pass is running on in this process: the lock within one process (see `#exclusive`). */
const passing = new WeakSet<Db>();

/**
 * Garbage collection of attachments (issue 19). Every node runs a pass every `intervalMs`; one node at a time does
 * the work (a Postgres advisory lock; the others skip). A pass:
 *
 * 1. deletes the rows of uploads never finished that began more than the grace period ago (abandoned);
 * 2. deletes the rows of stored files that only deleted messages listed (deleted: at once), and of stored files
 *    that no message lists, finished more than the grace period ago (unsent);
 * 3. deletes from the blob store the blobs those rows used, when no other row uses them (one blob may back many
 *    files, and be a thumbnail too), then walks the whole store for blobs no row uses (left by a room's deletion,
 *    which takes its files' rows with it, or by a crash between storing and recording);
 * 4. on every node, even when it skipped the rest: removes the partial uploads in its `DATA_DIR/uploads` whose
 *    row is gone (collected, or its room deleted) or long complete.
 *
 * A blob is deleted under its lock, against a finishing upload that stores the same bytes (blob-locks.ts). Rows
 * go in batches of `batchSize`, each delete a statement of its own, up to `maxRowsPerPass` of each kind. It logs one line
 * of counts and bytes per pass, never a file's name.
 */
export class FileCollector {
	readonly #deps: { db: Db; blobs: BlobStore; partials: UploadsHeld; log: Logger; metrics?: Metrics };
	readonly #graceSeconds: number;
	readonly #intervalMs: number;
	readonly #batch: number;
	readonly #max: number;
	/**
	 * Where the looks for unsent files (an id) and for deleted messages' files (a message's seq) go on from: more
	 * than a pass's bound is covered over several passes.
	 */
	#after = '';
	#afterSeq = 0;
	#timer: NodeJS.Timeout | undefined;
	#running: Promise<unknown> | undefined;
	#stopping = false;

	constructor(
		deps: { db: Db; blobs: BlobStore; partials: UploadsHeld; log: Logger; metrics?: Metrics },
		options: CollectorOptions,
	) {
		this.#deps = deps;
		this.#graceSeconds = options.graceMs / 1000;
		this.#intervalMs = options.intervalMs;
		this.#batch = options.batchSize ?? 500;
		this.#max = options.maxRowsPerPass ?? 20_000;
	}

	/** Runs a pass every interval, the first one interval after now (no pass while a node starts). */
	start(): void {
		if (this.#intervalMs <= 0 || this.#stopping || this.#timer) return;
		const next = () => {
			this.#timer = setTimeout(() => {
				this.#running = this.collect()
					.catch((error: unknown) => this.#deps.log.error({ err: error }, 'attachment collection failed'))
					.finally(() => {
						this.#running = undefined;
						if (!this.#stopping) next();
					});
			}, this.#intervalMs);
			this.#timer.unref();
		};
		next();
	}

	/** No more passes; a running one stops at its next batch. Resolves once it has. */
	async stop(): Promise<void> {
		this.#stopping = true;
		clearTimeout(this.#timer);
		await this.#running?.catch(() => undefined);
	}

	/** One pass now (also what the timer runs). Rejects when the database or the blob store fails. */
	async collect(): Promise<CollectSummary> {
		const { log, metrics } = this.#deps;
		const started = performance.now();
		const summary: CollectSummary = {
			skipped: false,
			collected: { abandoned: 0, unsent: 0, deleted: 0 },
			blobs: 0,
			blobBytes: 0,
			partials: 0,
			partialBytes: 0,
			finished: true,
			ms: 0,
		};
		try {
			summary.skipped = !(await this.#exclusive(() => this.#pass(summary)));
			await this.#leftOverUploads(summary);
		} catch (error) {
			metrics?.attachmentGcPasses.inc({ result: 'failed' });
			throw error;
		}
		summary.ms = Math.round(performance.now() - started);
		metrics?.attachmentGcPasses.inc({ result: summary.skipped ? 'skipped' : 'ok' });
		const { collected, ...rest } = summary;
		log.info({ ...collected, ...rest }, 'attachments collected');
		return summary;
	}

	/**
	 * Runs `fn` unless a pass holds the lock; resolves whether it ran. On Postgres the lock is a transaction-level
	 * advisory lock, held on a connection of its own (outside the pool, without its timeouts) for the pass, whose
	 * work goes through the pool in short statements. PGlite takes advisory locks, but its one session holds them
	 * all, so they exclude nothing within the process, and its transactions hold every other query back: the
	 * embedded database belongs to one process (`DATA_DIR/server.lock`), where the set `passing` is the lock.
	 */
	async #exclusive(fn: () => Promise<void>): Promise<boolean> {
		const { db } = this.#deps;
		if (passing.has(db)) return false;
		passing.add(db);
		try {
			if (db.kind === 'pglite') {
				await fn();
				return true;
			}
			return await db.transaction(
				async (tx) => {
					// A pass may take longer than a server-wide bound on idle transactions; its lock must last it.
					await tx.query('SET LOCAL idle_in_transaction_session_timeout = 0');
					const { rows } = await tx.query<{ locked: boolean }>(
						'SELECT pg_try_advisory_xact_lock($1) AS locked',
						[PASS_LOCK_KEY],
					);
					if (!rows[0]?.locked) return false;
					await fn();
					return true;
				},
				{ unbounded: true },
			);
		} finally {
			passing.delete(db);
		}
	}

	async #pass(summary: CollectSummary): Promise<void> {
		const freed = new Set<string>();
		await this.#abandoned(summary);
		await this.#deleted(summary, freed);
		await this.#unsent(summary, freed);
		const hashes = [...freed];
		for (let i = 0; i < hashes.length; i += WALK_CHUNK)
			await this.#deleteUnused(hashes.slice(i, i + WALK_CHUNK), summary);
		await this.#walkBlobs(summary, freed);
		if (this.#stopping) summary.finished = false;
	}

	async #abandoned(summary: CollectSummary): Promise<void> {
		const { db } = this.#deps;
		while (!this.#stopping) {
			const ids = await gc.deleteAbandoned(db, this.#graceSeconds, this.#batch);
			this.#count(summary, 'abandoned', ids.length);
			if (ids.length < this.#batch) return;
			if (summary.collected.abandoned >= this.#max) return void (summary.finished = false);
		}
	}

	/** The files of deleted messages that no live message lists, from where the last pass stopped. */
	async #deleted(summary: CollectSummary, freed: Set<string>): Promise<void> {
		const { db } = this.#deps;
		let looked = 0;
		while (!this.#stopping) {
			const batch = await gc.filesOfDeletedMessages(db, this.#afterSeq, this.#batch);
			const live = await gc.listed(db, batch.ids, true);
			const rows = await gc.deleteUnlisted(
				db,
				batch.ids.filter((id) => !live.has(id)),
			);
			this.#freed(summary, 'deleted', rows, freed);
			looked += batch.messages;
			this.#afterSeq = batch.messages < this.#batch ? 0 : batch.lastSeq;
			if (batch.messages < this.#batch) return;
			if (looked >= this.#max) return void (summary.finished = false);
		}
	}

	/** Stored files no message lists, looked at in order of id from where the last pass stopped. */
	async #unsent(summary: CollectSummary, freed: Set<string>): Promise<void> {
		const { db } = this.#deps;
		let looked = 0;
		while (!this.#stopping) {
			const ids = await gc.storedBefore(db, this.#after, this.#graceSeconds, this.#batch);
			const sent = await gc.listed(db, ids, false);
			const rows = await gc.deleteUnlisted(
				db,
				ids.filter((id) => !sent.has(id)),
			);
			this.#freed(summary, 'unsent', rows, freed);
			looked += ids.length;
			this.#after = ids.length < this.#batch ? '' : (ids[ids.length - 1] ?? '');
			if (ids.length < this.#batch) return;
			if (looked >= this.#max) return void (summary.finished = false);
		}
	}

	/**
	 * Every blob of the store that no row uses. Not done while no attachment row exists at all: that is a new
	 * database (or another one) given a blob store in use, more often than a store whose every file was collected.
	 */
	async #walkBlobs(summary: CollectSummary, done: Set<string>): Promise<void> {
		const { db, blobs } = this.#deps;
		if (this.#stopping || !(await gc.anyAttachment(db))) return;
		let chunk: string[] = [];
		for await (const hash of blobs.list()) {
			if (this.#stopping) return;
			if (done.has(hash)) continue;
			chunk.push(hash);
			if (chunk.length < WALK_CHUNK) continue;
			await this.#deleteUnused(chunk, summary);
			chunk = [];
		}
		await this.#deleteUnused(chunk, summary);
	}

	/** Deletes those of these blobs that no row uses, each under its lock (checked again there). */
	async #deleteUnused(hashes: string[], summary: CollectSummary): Promise<void> {
		const { db, blobs, metrics } = this.#deps;
		for (const hash of await gc.unusedBlobs(db, hashes)) {
			if (this.#stopping) return;
			const bytes = await deleteIfUnused(db, blobs, hash);
			if (bytes === null) continue;
			summary.blobs += 1;
			summary.blobBytes += bytes;
			metrics?.attachmentBytesFreed.inc({ store: 'blobs' }, bytes);
		}
	}

	/** This node's partial uploads whose row is gone or long complete (see `gc.uploadsToKeep`). */
	async #leftOverUploads(summary: CollectSummary): Promise<void> {
		const { db, partials, metrics } = this.#deps;
		const ids = await partials.list();
		for (let i = 0; i < ids.length && !this.#stopping; i += this.#batch) {
			const chunk = ids.slice(i, i + this.#batch);
			const keep = await gc.uploadsToKeep(db, chunk, this.#graceSeconds);
			for (const id of chunk) {
				if (keep.has(id)) continue;
				const bytes = await partials.remove(id);
				if (bytes === null) continue;
				summary.partials += 1;
				summary.partialBytes += bytes;
				metrics?.attachmentBytesFreed.inc({ store: 'uploads' }, bytes);
			}
		}
	}

	#freed(summary: CollectSummary, reason: CollectReason, rows: gc.FreedRow[], freed: Set<string>): void {
		this.#count(summary, reason, rows.length);
		for (const row of rows) {
			if (row.sha256) freed.add(row.sha256);
			if (row.thumb_sha256) freed.add(row.thumb_sha256);
		}
	}

	#count(summary: CollectSummary, reason: CollectReason, rows: number): void {
		summary.collected[reason] += rows;
		if (rows > 0) this.#deps.metrics?.attachmentsCollected.inc({ reason }, rows);
	}
}

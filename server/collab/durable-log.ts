import type { Logger } from 'pino';
import { FloodLog } from '../log.ts';
import type { Db } from '../db/index.ts';
import * as messages from '../data/messages.ts';
import { collabRejections } from '#protocol/errors.ts';
import type { RoomEvent } from '#protocol/events.ts';
import type { Span } from '@opentelemetry/api';
import type { Metrics } from '../metrics.ts';
import { inSpan } from '../tracing.ts';
import { UpdateRejected } from './validation.ts';

export interface AppendEntry {
	documentName: string;
	roomId: string;
	update: Uint8Array;
	events: RoomEvent[];
	/** When the server received the update (performance.now()): its mirror lag is measured from there. */
	receivedAt?: number;
	/** The update's span: the batch's commit becomes its child (or a link, for the other updates of a batch). */
	span?: Span;
	/**
	 * The member who sent the update: it is written only while they are a member with a writing role, checked in
	 * the append's own transaction (the server's own trims have no writer).
	 */
	writerId?: string;
}

interface Pending extends AppendEntry {
	resolve(): void;
	reject(error: unknown): void;
	/** Times its batch's statement was rolled back by a conflict with another commit (see #failed). */
	conflicts?: number;
}

/** How often a batch goes again after a deadlock or a serialization failure before it is refused. */
const CONFLICT_RETRIES = 3;

/**
 * The durable write path of accepted updates: each update is appended to `document_updates` and its
 * events mirrored into `messages` in the same transaction (one statement), before the update is applied in memory or
 * acknowledged. Appends from all connections are grouped: what arrives in one turn of the event loop goes as one
 * batch, and up to `commitsInFlight` batches commit at once, each on its own connection; with all of them under
 * way, the next batch gathers until one finishes. So a lone write waits for its own commit only, one slow commit
 * holds up no one else's, and throughput still grows with load.
 *
 * Batches that commit at once may commit in any order; nothing depends on their order. An update that builds on
 * another's structs waits for that append first (DurableAppend), so it is logged after it; a client's updates
 * are appended one at a time (Hocuspocus handles a connection's frames in order); compaction deletes exactly the
 * rows it folded, and loads read the whole log: as with several nodes writing one room. Two commits that update the
 * same rows in opposite orders (two deletes of the same messages) can deadlock; Postgres rolls one back, and its
 * batch goes again (CONFLICT_RETRIES).
 */
export class DurableLog {
	readonly #db: Db;
	readonly #log: Logger;
	readonly #failures: FloodLog;
	#queue: Pending[] = [];
	/** A batch is gathering (its turn is not over yet). */
	#gathering = false;
	readonly #committing = new Set<Promise<void>>();
	readonly #commitsInFlight: number;
	readonly #metrics: Metrics | undefined;

	constructor(
		db: Db,
		log: Logger,
		metrics?: Metrics,
		{ commitsInFlight = 1 }: { commitsInFlight?: number } = {},
	) {
		this.#db = db;
		this.#log = log;
		this.#failures = new FloodLog(log, {
			perInterval: 5,
			summary: 'more failed appends than are logged one by one; counted by error code',
		});
		this.#metrics = metrics;
		this.#commitsInFlight = Math.max(1, Math.floor(commitsInFlight));
	}

	append(entry: AppendEntry): Promise<void> {
		return new Promise<void>((resolve, reject) => {
			this.#queue.push({ ...entry, resolve, reject });
			this.#gather();
		});
	}

	/** Resolves once everything appended so far is committed (or failed). */
	async drain(): Promise<void> {
		while (this.#committing.size > 0 || this.#gathering) {
			if (this.#committing.size > 0) await Promise.all(this.#committing);
			else await new Promise((resolve) => setImmediate(resolve));
		}
	}

	/** Starts a batch at the end of this turn, when a commit may start: the other appends of the turn join it. */
	#gather(): void {
		if (this.#gathering || this.#committing.size >= this.#commitsInFlight) return;
		this.#gathering = true;
		setImmediate(() => {
			this.#gathering = false;
			this.#start();
		});
	}

	/** Commits what is queued as one batch, then, when it is done, what gathered meanwhile. */
	#start(): void {
		if (this.#queue.length === 0 || this.#committing.size >= this.#commitsInFlight) return;
		let batch = this.#queue;
		this.#queue = [];
		const committing = (async () => {
			try {
				while (batch.length > 0) batch = await this.#commit(batch);
			} catch (error) {
				// #commit settles its entries itself; this is for a bug in it, which must not leave them waiting.
				this.#log.error({ err: error }, 'durable append failed unexpectedly');
				for (const entry of batch) entry.reject(error);
			}
		})().finally(() => {
			this.#committing.delete(committing);
			// What queued while every commit was under way has had its turns to gather: it goes now.
			this.#start();
		});
		this.#committing.add(committing);
	}

	/**
	 * One statement (one round trip, one transaction) for a batch: the mirror and the log
	 * (`messages.durableAppend`). Entries that reuse the id of another sender's event in the room's history are
	 * refused, and the rest is committed again without them: returns what is left to commit (empty when done).
	 */
	async #commit(batch: Pending[]): Promise<Pending[]> {
		let taken: Set<string>;
		const started = performance.now();
		const spans = batch.flatMap((e) => (e.span ? [e.span] : []));
		try {
			const rows = batch.flatMap((e) => e.events.map((event) => ({ roomId: e.roomId, event })));
			taken = await inSpan(
				'chat.durable_append',
				{
					attributes: { 'chat.batch.updates': batch.length, 'chat.batch.events': rows.length },
					links: spans.slice(1).map((s) => ({ context: s.spanContext() })),
				},
				() =>
					messages.durableAppend(
						this.#db,
						rows,
						batch.map((e) => ({
							name: e.documentName,
							update: e.update,
							writer: e.writerId ? { roomId: e.roomId, userId: e.writerId } : undefined,
						})),
					),
				spans[0],
			);
		} catch (error) {
			return this.#failed(batch, error);
		}
		if (taken.size > 0) {
			const refused = (e: Pending) => e.events.some((event) => taken.has(`${e.roomId} ${event.clientMsgId}`));
			for (const entry of batch.filter(refused)) {
				entry.reject(
					new UpdateRejected(
						collabRejections.invalidUpdate,
						'entries are written once: this clientMsgId already exists in the room history',
					),
				);
			}
			return batch.filter((e) => !refused(e));
		}
		const now = performance.now();
		this.#metrics?.durableAppendSeconds.observe((now - started) / 1_000);
		this.#metrics?.durableAppendBatch.observe(batch.length);
		for (const entry of batch) {
			if (entry.receivedAt !== undefined)
				for (let i = 0; i < entry.events.length; i++)
					this.#metrics?.mirrorLagSeconds.observe((now - entry.receivedAt) / 1_000);
			entry.resolve();
		}
		return [];
	}

	/** What is left to commit of a batch whose statement failed (see #commit); the rest is settled here. */
	async #failed(batch: Pending[], error: unknown): Promise<Pending[]> {
		if (conflicts(error)) {
			// Postgres rolled the statement back to break a deadlock with another commit (another batch of this
			// node's, or another node's): nothing of it was written, and it goes again as it is, a few times.
			for (const entry of batch) entry.conflicts = (entry.conflicts ?? 0) + 1;
			if (batch.every((entry) => (entry.conflicts ?? 0) <= CONFLICT_RETRIES)) return batch;
		}
		if (error instanceof messages.WritersRefused) {
			// Removed (or made read-only) while the update waited: it is written nowhere (docs/security.md).
			const refused = (e: Pending) => e.writerId && error.refused.has(`${e.roomId} ${e.writerId}`);
			for (const entry of batch.filter(refused)) {
				const role = error.refused.get(`${entry.roomId} ${entry.writerId}`);
				entry.reject(
					new UpdateRejected(
						role ? collabRejections.roleChanged : collabRejections.notAMember,
						role ? `the writer's role is ${role} now` : 'the writer is no longer a member of the room',
					),
				);
			}
			return batch.filter((e) => !refused(e));
		}
		if (refusesData(error)) {
			// The database refused a value (one the validator let through): never every writer of the batch
			// for one of them. Each update is committed on its own; only the one that fails again is refused.
			if (batch.length > 1) {
				for (const entry of batch) await this.#commitAlone(entry);
				return [];
			}
			this.#log.warn(
				{ code: (error as { code?: unknown }).code, roomId: batch[0]?.roomId },
				'durable append refused a value; the update was refused',
			);
			batch[0]?.reject(
				new UpdateRejected(collabRejections.invalidUpdate, 'the database refused a value of this update'),
			);
			return [];
		}
		// An outage fails every append until it ends: a few are logged whole, the rest counted.
		const code = (error as { code?: unknown }).code;
		this.#failures.error(
			{ err: error, updates: batch.length, reason: typeof code === 'string' ? code : 'failed' },
			'durable append failed; the updates were refused',
		);
		for (const entry of batch) entry.reject(error);
		return [];
	}

	/** Commits one update of a batch that failed as a whole (see #commit); settles it either way. */
	async #commitAlone(entry: Pending): Promise<void> {
		let rest = [entry];
		while (rest.length > 0) rest = await this.#commit(rest);
	}
}

/** A deadlock (40P01) or a serialization failure (40001): the statement may simply run again. */
function conflicts(error: unknown): boolean {
	const code = (error as { code?: unknown })?.code;
	return code === '40P01' || code === '40001';
}

/**
 * A statement the database refused for what it was given, not for being unreachable: SQLSTATE class 22 (data
 * exception: a date out of range, a bad encoding) or 23 (integrity constraint).
 */
function refusesData(error: unknown): boolean {
	const code = (error as { code?: unknown })?.code;
	return typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code);
}

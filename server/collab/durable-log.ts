import type { Logger } from 'pino';
import type { Db } from '../db/index.ts';
import * as documents from '../data/documents.ts';
import * as messages from '../data/messages.ts';
import { collabRejections } from '../../src/lib/protocol/errors.ts';
import type { RoomEvent } from '../../src/lib/protocol/events.ts';
import { UpdateRejected } from './validation.ts';

/** Rolls a batch's transaction back: some of its ids are taken (see `messages.mirror`). */
class IdsTaken extends Error {}

export interface AppendEntry {
	documentName: string;
	roomId: string;
	update: Uint8Array;
	events: RoomEvent[];
}

interface Pending extends AppendEntry {
	resolve(): void;
	reject(error: unknown): void;
}

/**
 * The durable write path of accepted updates: each update is appended to `document_updates` and its
 * events mirrored into `messages` in the same transaction, before the update is applied in memory or
 * acknowledged. Appends from all connections are grouped: while one commit is in flight the next
 * batch gathers, so throughput grows with load while a lone write waits for one commit only.
 */
export class DurableLog {
	readonly #db: Db;
	readonly #log: Logger;
	#queue: Pending[] = [];
	#flushing: Promise<void> | null = null;

	constructor(db: Db, log: Logger) {
		this.#db = db;
		this.#log = log;
	}

	append(entry: AppendEntry): Promise<void> {
		return new Promise<void>((resolve, reject) => {
			this.#queue.push({ ...entry, resolve, reject });
			this.#flushing ??= this.#flushLoop();
		});
	}

	/** Resolves once everything appended so far is committed (or failed). */
	async drain(): Promise<void> {
		while (this.#flushing) await this.#flushing;
	}

	/**
	 * One transaction for a batch: the mirror first, then the log. Entries that reuse the id of another sender's
	 * event in the room's history are refused, and the rest is committed again without them: returns what is
	 * left to commit (empty when done).
	 */
	async #commit(batch: Pending[]): Promise<Pending[]> {
		let taken = new Set<string>();
		try {
			await this.#db.transaction(async (tx) => {
				taken = await messages.mirror(
					tx,
					batch.flatMap((e) => e.events.map((event) => ({ roomId: e.roomId, event }))),
				);
				if (taken.size > 0) throw new IdsTaken();
				await documents.appendUpdates(
					tx,
					batch.map((e) => ({ name: e.documentName, update: e.update })),
				);
			});
		} catch (error) {
			if (!(error instanceof IdsTaken)) {
				this.#log.error(
					{ err: error, updates: batch.length },
					'durable append failed; the updates were refused',
				);
				for (const entry of batch) entry.reject(error);
				return [];
			}
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
		for (const entry of batch) entry.resolve();
		return [];
	}

	async #flushLoop(): Promise<void> {
		// Let the other connections' messages of this tick join the first batch.
		await new Promise<void>((resolve) => setImmediate(resolve));
		try {
			while (this.#queue.length > 0) {
				let batch = this.#queue;
				this.#queue = [];
				while (batch.length > 0) batch = await this.#commit(batch);
			}
		} finally {
			this.#flushing = null;
		}
	}
}

import type { Extension, onStoreDocumentPayload } from '@hocuspocus/server';
import type { Logger } from 'pino';
import * as Y from 'yjs';
import { messagesMapName } from '#protocol/events.ts';
import * as documents from '../data/documents.ts';
import type { Db } from '../db/index.ts';
import type { Metrics } from '../metrics.ts';
import { inSpan } from '../tracing.ts';
import type { DurableLog } from './durable-log.ts';
import type { LiveRooms } from './live-rooms.ts';
import { replay } from './room-loader.ts';
import { squashTrimmed } from './trim.ts';

/**
 * Folds a room's append log into its snapshot. Hocuspocus stores a document debounced after changes, and at once
 * when its last client leaves; the log already holds every accepted update, so a store only compacts: when
 * COMPACT_AFTER_UPDATES piled up, or when the document is about to be unloaded.
 */
export class Compaction implements Extension {
	readonly extensionName = 'compaction';
	readonly #db: Db;
	readonly #log: Logger;
	readonly #rooms: LiveRooms;
	readonly #durable: DurableLog;
	readonly #compactAfter: number;
	readonly #metrics: Metrics | undefined;
	readonly #running = new Map<string, Promise<void>>();

	constructor(deps: {
		db: Db;
		log: Logger;
		rooms: LiveRooms;
		durable: DurableLog;
		compactAfterUpdates: number;
		metrics?: Metrics;
	}) {
		this.#db = deps.db;
		this.#log = deps.log.child({ component: 'compaction' });
		this.#rooms = deps.rooms;
		this.#durable = deps.durable;
		this.#compactAfter = deps.compactAfterUpdates;
		this.#metrics = deps.metrics;
	}

	async onStoreDocument({ documentName, clientsCount }: onStoreDocumentPayload): Promise<void> {
		const appended = this.#rooms.get(documentName)?.appended ?? 0;
		if (appended === 0 || (clientsCount > 0 && appended < this.#compactAfter)) return;
		await this.compact(documentName);
	}

	/** Folds a document's log into its snapshot. Concurrent calls for one document share one run. */
	compact(documentName: string): Promise<void> {
		let run = this.#running.get(documentName);
		if (!run) {
			run = inSpan('chat.compact', { attributes: { 'chat.document': documentName } }, () =>
				this.#compact(documentName),
			).finally(() => this.#running.delete(documentName));
			this.#running.set(documentName, run);
		}
		return run;
	}

	/** For shutdown: waits for in-flight appends, then compacts every room with appended updates. */
	async flush(): Promise<void> {
		await this.#durable.drain();
		const pending = [...this.#rooms.values()].filter((room) => room.appended > 0);
		await Promise.all(pending.map((room) => this.compact(room.documentName)));
	}

	async #compact(documentName: string): Promise<void> {
		const started = performance.now();
		try {
			const folded = await documents.compact(this.#db, documentName, (stored) =>
				this.#fold(documentName, stored),
			);
			const room = this.#rooms.get(documentName);
			if (room) room.appended = Math.max(0, room.appended - folded);
			this.#metrics?.compactions.inc({ result: 'ok' });
			this.#metrics?.compactionSeconds.observe((performance.now() - started) / 1_000);
			this.#log.debug(
				{ documentName, folded, ms: Math.round(performance.now() - started) },
				'document compacted',
			);
		} catch (error) {
			// The log still holds every update; the next store or the next load tries again.
			this.#metrics?.compactions.inc({ result: 'failed' });
			this.#log.error({ err: error, documentName }, 'compaction failed; will retry later');
		}
	}

	/** The snapshot of a stored snapshot and log: applied to a fresh document, trimmed entries squashed. */
	#fold(documentName: string, stored: documents.StoredDocument): Uint8Array {
		const doc = new Y.Doc();
		try {
			replay(doc, stored, (updateId, error) =>
				this.#log.error({ err: error, documentName, updateId }, 'stored update could not be folded'),
			);
			squashTrimmed(doc, messagesMapName);
			return Y.encodeStateAsUpdate(doc);
		} finally {
			doc.destroy();
		}
	}
}

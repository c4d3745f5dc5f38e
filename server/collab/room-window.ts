import type { Extension, onLoadDocumentPayload, onStoreDocumentPayload } from '@hocuspocus/server';
import type { Logger } from 'pino';
import * as Y from 'yjs';
import { messagesMapName } from '#protocol/events.ts';
import type { DurableLog } from './durable-log.ts';
import type { LiveRoom, LiveRooms } from './live-rooms.ts';
import { squashTrimmed, trimPlan } from './trim.ts';

/** A room is trimmed back to its window once it holds this many times the window (the slack keeps trims rare). */
export const TRIM_AT_WINDOWS = 1.5;
/** The origin of the server's own trims of a room's window. */
const trimOrigin = { source: 'local', trim: true } as const;

/**
 * Keeps a room's live document bounded: once it holds TRIM_AT_WINDOWS × the window (ROOM_WINDOW_MESSAGES), the
 * oldest messages (and what points at them) are deleted from it in one server transaction, appended to the
 * durable log like any update, and relayed; Yjs then keeps only small tombstones. Clients move what disappears
 * into their history cache, and page older history in from the mirror. Deterministic, so nodes that trim the same
 * room agree. Runs when a room loads and whenever Hocuspocus stores it (before Compaction folds the log).
 */
export class RoomWindow implements Extension {
	readonly extensionName = 'room-window';
	readonly #durable: DurableLog;
	readonly #log: Logger;
	readonly #rooms: LiveRooms;
	readonly #window: number;

	constructor(durable: DurableLog, log: Logger, rooms: LiveRooms, windowMessages: number) {
		this.#durable = durable;
		this.#log = log.child({ component: 'room-window' });
		this.#rooms = rooms;
		this.#window = windowMessages;
	}

	async onLoadDocument({ documentName }: onLoadDocumentPayload): Promise<void> {
		const room = this.#rooms.get(documentName);
		if (room) await this.#trim(room);
	}

	async onStoreDocument({ documentName }: onStoreDocumentPayload): Promise<void> {
		const room = this.#rooms.get(documentName);
		if (room) await this.#trim(room);
	}

	async #trim(room: LiveRoom): Promise<void> {
		const { document, documentName, roomId } = room;
		const map = document.getMap(messagesMapName);
		if (map.size <= Math.floor(this.#window * TRIM_AT_WINDOWS)) return;
		const doomed = trimPlan(map, this.#window);
		if (doomed.length === 0) return;
		let update: Uint8Array | undefined;
		const capture = (u: Uint8Array, origin: unknown) => {
			if (origin === trimOrigin) update = u;
		};
		document.on('update', capture);
		try {
			Y.transact(document, () => doomed.forEach((key) => map.delete(key)), trimOrigin);
		} finally {
			document.off('update', capture);
		}
		if (!update) return;
		// What a reload would do: the tombstones become GC runs, so a live room's memory stays bounded however
		// long it stays open (about 300 bytes of heap per trimmed entry otherwise).
		squashTrimmed(document, messagesMapName);
		try {
			await this.#durable.append({ documentName, roomId, update, events: [] });
			room.appended++;
			this.#log.info({ documentName, trimmed: doomed.length, kept: map.size }, 'room window trimmed');
		} catch (error) {
			// The live document is trimmed but the log is not: a reload brings the entries back, and they are
			// trimmed again. Nothing is lost either way: they are in the mirror.
			this.#log.warn({ err: error, documentName }, 'room trim not stored; it is redone on the next load');
		}
	}
}

import type { Extension, onLoadDocumentPayload } from '@hocuspocus/server';
import type { Logger } from 'pino';
import * as Y from 'yjs';
import { collabRejections } from '#protocol/errors.ts';
import { messagesMapName } from '#protocol/events.ts';
import { roomIdFromDocumentName } from '#protocol/ids.ts';
import { limits } from '#protocol/limits.ts';
import * as documents from '../data/documents.ts';
import * as rooms from '../data/rooms.ts';
import type { Db } from '../db/index.ts';
import type { LiveRoom, LiveRooms } from './live-rooms.ts';
import { clientOwners } from './validation.ts';

/** Transactions that replay stored state must not trigger a store of what was just loaded. */
const loadOrigin = { source: 'local', skipStoreHooks: true } as const;
/** A room catches up from the durable log at most this often (see `catchUpRoom`). */
const CATCH_UP_INTERVAL_MS = 1_000;

/**
 * Loads a room's document from its snapshot and append log, registers it in LiveRooms, and brings a live room up
 * to date with the log when this node may have missed relayed updates. A user channel (`user:<id>`) is an empty
 * document the server speaks on: nothing to load.
 */
export class RoomLoader implements Extension {
	readonly extensionName = 'room-loader';
	readonly #db: Db;
	readonly #log: Logger;
	readonly #rooms: LiveRooms;

	constructor(db: Db, log: Logger, rooms: LiveRooms) {
		this.#db = db;
		this.#log = log.child({ component: 'room-loader' });
		this.#rooms = rooms;
	}

	async onLoadDocument({ document, documentName }: onLoadDocumentPayload): Promise<void> {
		const roomId = roomIdFromDocumentName(documentName);
		if (!roomId) return;
		let appended: number;
		let createdAt: number | null;
		try {
			[appended, createdAt] = await Promise.all([
				this.#applyStored(document, documentName),
				rooms.createdAt(this.#db, roomId),
			]);
		} catch (error) {
			// The database could not answer (down, timed out, its pool exhausted by a reconnect storm): a refusal
			// to retry soon. A bare error would reach the client as `permission-denied`, which it retries once.
			this.#log.warn({ err: error, documentName }, 'room not loaded: the database did not answer');
			throw collabRejections.unavailable;
		}
		const owners = clientOwners(document);
		this.#rooms.add({
			roomId,
			documentName,
			document,
			reservedKeys: new Map(),
			appends: new Map(),
			owners,
			catchUp: { started: 0 },
			notBefore: (createdAt ?? 0) - limits.maxClockSkewMs,
			appended,
		});
		// Entries that arrive from other nodes (Redis) or a catch-up bind their client ids too, so a user on
		// this node cannot borrow the client id of someone who wrote on another node.
		document.getMap(messagesMapName).observe((event) => {
			const map = event.target as Y.Map<unknown>;
			for (const [key, change] of event.changes.keys) {
				if (change.action !== 'add') continue;
				const item = map._map.get(key);
				const senderId = (item?.content.getContent()[0] as { senderId?: unknown } | undefined)?.senderId;
				if (item && typeof senderId === 'string') owners.set(item.id.client, senderId);
			}
		});
	}

	async afterUnloadDocument({ documentName }: { documentName: string }): Promise<void> {
		this.#rooms.delete(documentName);
	}

	/**
	 * Applies what the durable log holds to every open room: after this node missed relayed updates (Redis was
	 * away), this makes each room whole again, and Hocuspocus sends the difference to its clients.
	 */
	async catchUp(): Promise<void> {
		for (const room of [...this.#rooms.values()]) await this.catchUpRoom(room);
	}

	/**
	 * Re-reads a room's durable log into its live document, for callers that met an entry they do not hold.
	 * Coalesced: everyone waiting shares the next run, which starts after they asked (so it sees what was
	 * committed before) and at most once per CATCH_UP_INTERVAL_MS, so forged updates cannot make the node
	 * reload a room in a loop; they wait for the next run and are refused then.
	 */
	catchUpRoom(room: LiveRoom): Promise<void> {
		const state = room.catchUp;
		state.next ??= (async () => {
			await state.running?.catch(() => undefined);
			await new Promise((r) => setTimeout(r, Math.max(0, state.started + CATCH_UP_INTERVAL_MS - Date.now())));
			state.next = undefined;
			state.started = Date.now();
			state.running = this.#applyStored(room.document, room.documentName).then(() => undefined);
			await state.running;
		})();
		return state.next;
	}

	/** Applies the stored snapshot and log to `document` (a fresh one, or a live one catching up). */
	async #applyStored(document: Y.Doc, documentName: string): Promise<number> {
		const stored = await documents.load(this.#db, documentName);
		Y.transact(
			document,
			() =>
				replay(document, stored, (updateId, error) =>
					this.#log.error({ err: error, documentName, updateId }, 'stored update could not be applied'),
				),
			loadOrigin,
		);
		return stored.updates.length;
	}
}

/**
 * Applies a stored snapshot and log to `document`. Every logged update was applied to a server document once; one
 * that fails now is reported and skipped, so the room still opens (or compacts) with everything else.
 */
export function replay(
	document: Y.Doc,
	stored: documents.StoredDocument,
	onBadUpdate: (updateId: unknown, error: unknown) => void,
): void {
	if (stored.snapshot) Y.applyUpdate(document, stored.snapshot);
	for (const { id, update } of stored.updates) {
		try {
			Y.applyUpdate(document, update);
		} catch (error) {
			onBadUpdate(id, error);
		}
	}
}

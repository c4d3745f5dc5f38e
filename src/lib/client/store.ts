import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import { z } from '../protocol/zod.ts';
import { attachmentRef, roomEvent, type RoomEvent } from '../protocol/events.ts';
import { uuid } from '../protocol/ids.ts';
import type { UserChannelMessage } from '../protocol/user-channel.ts';
import type { ChatMessage, FailedMessage } from '../sync/model.ts';
import { outgoingDatabaseName } from './outgoing-files.ts';
import * as schemas from './schemas.ts';

/**
 * App metadata on the device, with `idb`. Room documents live in their own y-indexeddb databases
 * (`roomDatabaseName`); everything else of one account lives in `chat-meta-<userId>`, so signing out can
 * delete exactly that account's data. The last signed-in profile is kept apart, in `chat-profile`.
 *
 * Rows read back are validated like any other input: an older or damaged database must not crash the app.
 */

const PROFILE_DB = 'chat-profile';
const META_VERSION = 3;

export const roomDatabasePrefix = (userId: string) => `chat-${userId}-room-`;
export const roomDatabaseName = (userId: string, roomId: string) => `${roomDatabasePrefix(userId)}${roomId}`;
export const metaDatabaseName = (userId: string) => `chat-meta-${userId}`;

/** This user's read position in a room (a `Place`), as the device keeps it. */
export const readState = z.union([
	z.object({ roomId: uuid, at: z.number(), clientMsgId: z.string() }),
	// As versions before protocol 3 stored it: read, and written back in the shape above.
	z
		.object({ roomId: uuid, lastReadAt: z.number(), lastReadId: z.string() })
		.transform(({ roomId, lastReadAt, lastReadId }) => ({ roomId, at: lastReadAt, clientMsgId: lastReadId })),
]);
export type ReadState = z.output<typeof readState>;

/** An own message the server refused for good; kept so that nothing disappears from its sender's view. */
export const failedMessage = z.object({
	roomId: uuid,
	clientMsgId: z.string(),
	content: z.string(),
	createdAt: z.string(),
	replyToId: z.string().optional(),
	reason: z.string(),
}) satisfies z.ZodType<FailedMessage>;
export type { FailedMessage };

/**
 * A history event as cached: the room event schema, except that the content of a deleted message (or edit)
 * comes back from the server empty, and is kept so.
 */
const historyEvent = z.union([
	roomEvent,
	z
		.object({
			kind: z.enum(['message', 'edit']),
			clientMsgId: uuid,
			senderId: uuid,
			createdAt: z.string(),
			content: z.literal(''),
		})
		.loose(),
]);

/** A message as a room showed it last (`RoomScreen`), read back like any input. */
const screenMessage = z.object({
	clientMsgId: z.string(),
	senderId: z.string(),
	content: z.string(),
	createdAt: z.string(),
	at: z.number(),
	replyToId: z.string().optional(),
	own: z.boolean(),
	status: z.enum(['pending', 'synced', 'failed']),
	reason: z.string().optional(),
	editedAt: z.string().optional(),
	deleted: z.object({ by: z.string(), at: z.string() }).optional(),
	reactions: z.array(z.object({ emoji: z.string(), userIds: z.array(z.string()) })),
	// Stored files only: a message still uploading is not kept as shown (its files are on the device).
	attachments: z.array(attachmentRef).optional(),
}) satisfies z.ZodType<ChatMessage>;

/** Why the user is no longer in a room (the user channel's `room-removed` reasons). */
export const removalReason = z.enum(['removed', 'left', 'deleted']) satisfies z.ZodType<
	Extract<UserChannelMessage, { type: 'room-removed' }>['reason']
>;
export type RemovalReason = z.infer<typeof removalReason>;

/** A room the user was removed from, kept (and shown read-only) until they dismiss it. */
export const removedRoom = z.object({ room: schemas.roomSummary, reason: removalReason });
export type RemovedRoom = z.infer<typeof removedRoom>;

interface MetaSchema extends DBSchema {
	rooms: { key: string; value: unknown };
	read: { key: string; value: unknown };
	/** Keys `[roomId, clientMsgId]`: events the server acknowledged as durable. */
	acked: { key: [string, string]; value: 1 };
	failed: { key: [string, string]; value: unknown };
	/** Keys `[roomId, clientMsgId]`: events trimmed from the live document or paged in from the server. */
	history: { key: [string, string]; value: unknown };
	/** Key: room id. The newest messages the room showed, to paint it at once (`RoomScreen`). */
	screens: { key: string; value: unknown };
}

interface ProfileSchema extends DBSchema {
	profile: { key: string; value: unknown };
}

function openProfileDb() {
	return openDB<ProfileSchema>(PROFILE_DB, 1, {
		upgrade(db) {
			db.createObjectStore('profile');
		},
	});
}

/** The profile that was signed in last, or null. */
export async function loadProfile(): Promise<schemas.Profile | null> {
	const db = await openProfileDb();
	try {
		const parsed = schemas.profile.safeParse(await db.get('profile', 'last'));
		return parsed.success ? parsed.data : null;
	} finally {
		db.close();
	}
}

export async function saveProfile(profile: schemas.Profile): Promise<void> {
	const db = await openProfileDb();
	try {
		await db.put('profile', { id: profile.id, name: profile.name }, 'last');
	} finally {
		db.close();
	}
}

export async function clearProfile(): Promise<void> {
	const db = await openProfileDb();
	try {
		await db.delete('profile', 'last');
	} finally {
		db.close();
	}
}

/** One account's metadata database. Open it once per sign-in; `close()` before deleting it. */
export class MetaStore {
	readonly userId: string;
	readonly #db: Promise<IDBPDatabase<MetaSchema>>;

	constructor(userId: string) {
		this.userId = userId;
		this.#db = openDB<MetaSchema>(metaDatabaseName(userId), META_VERSION, {
			upgrade(db, oldVersion) {
				if (oldVersion < 1) {
					db.createObjectStore('rooms');
					db.createObjectStore('read');
					db.createObjectStore('acked');
					db.createObjectStore('failed');
				}
				if (oldVersion < 2) db.createObjectStore('history');
				if (oldVersion < 3) db.createObjectStore('screens');
			},
		});
	}

	/**
	 * The cached room list. Items that no longer parse (cached by an older version of the app, before the list
	 * carried roles and unread counts) are dropped without a word: `stale` tells the caller to fetch the list.
	 */
	async rooms(): Promise<{ rooms: schemas.RoomSummary[]; stale: boolean }> {
		const db = await this.#db;
		const row = await db.get('rooms', 'list');
		const rows: unknown[] = Array.isArray(row) ? row : [];
		const rooms: schemas.RoomSummary[] = [];
		for (const item of rows) {
			const parsed = schemas.roomSummary.safeParse(item);
			if (parsed.success) rooms.push(parsed.data);
		}
		return { rooms, stale: rooms.length < rows.length };
	}

	/** Replaces the cached room list. */
	async saveRooms(rooms: schemas.RoomSummary[]): Promise<void> {
		const db = await this.#db;
		// A plain copy: structured clone refuses the reactive proxies a caller may pass.
		await db.put('rooms', JSON.parse(JSON.stringify(rooms)) as unknown, 'list');
	}

	/** Rooms the user is no longer in whose local copy is still on this device (until dismissed). */
	async removedRooms(): Promise<RemovedRoom[]> {
		const db = await this.#db;
		const row = await db.get('rooms', 'removed');
		const rows: unknown[] = Array.isArray(row) ? row : [];
		return rows.flatMap((item) => {
			const parsed = removedRoom.safeParse(item);
			return parsed.success ? [parsed.data] : [];
		});
	}

	async saveRemovedRooms(rooms: RemovedRoom[]): Promise<void> {
		const db = await this.#db;
		await db.put('rooms', JSON.parse(JSON.stringify(rooms)) as unknown, 'removed');
	}

	/** Deletes what this database holds about one room: read state, acknowledgements, failures, history, screen. */
	async forgetRoom(roomId: string): Promise<void> {
		const db = await this.#db;
		const range = IDBKeyRange.bound([roomId, ''], [roomId, '\uffff']);
		const tx = db.transaction(['read', 'acked', 'failed', 'history', 'screens'], 'readwrite');
		void tx.objectStore('read').delete(roomId);
		void tx.objectStore('screens').delete(roomId);
		void tx.objectStore('acked').delete(range);
		void tx.objectStore('failed').delete(range);
		void tx.objectStore('history').delete(range);
		await tx.done;
	}

	async readState(roomId: string): Promise<ReadState | null> {
		const db = await this.#db;
		const parsed = readState.safeParse(await db.get('read', roomId));
		return parsed.success ? parsed.data : null;
	}

	async saveReadState(state: ReadState): Promise<void> {
		const db = await this.#db;
		await db.put('read', state, state.roomId);
	}

	async ackedIds(roomId: string): Promise<string[]> {
		const db = await this.#db;
		const keys = await db.getAllKeys('acked', IDBKeyRange.bound([roomId, ''], [roomId, '\uffff']));
		return keys.map((key) => key[1]);
	}

	async addAcked(roomId: string, ids: Iterable<string>): Promise<void> {
		const db = await this.#db;
		const tx = db.transaction('acked', 'readwrite');
		for (const id of ids) void tx.store.put(1, [roomId, id]);
		await tx.done;
	}

	async failed(roomId: string): Promise<FailedMessage[]> {
		const db = await this.#db;
		const rows = await db.getAll('failed', IDBKeyRange.bound([roomId, ''], [roomId, '\uffff']));
		return rows.flatMap((row) => {
			const parsed = failedMessage.safeParse(row);
			return parsed.success ? [parsed.data] : [];
		});
	}

	async addFailed(messages: FailedMessage[]): Promise<void> {
		const db = await this.#db;
		const tx = db.transaction('failed', 'readwrite');
		for (const message of messages) void tx.store.put(message, [message.roomId, message.clientMsgId]);
		await tx.done;
	}

	/** A room's cached history (older than its live window), validated like any input. */
	async history(roomId: string): Promise<RoomEvent[]> {
		const db = await this.#db;
		const rows = await db.getAll('history', IDBKeyRange.bound([roomId, ''], [roomId, '\uffff']));
		return rows.flatMap((row) => {
			const parsed = historyEvent.safeParse(row);
			return parsed.success ? [parsed.data as RoomEvent] : [];
		});
	}

	async addHistory(roomId: string, events: RoomEvent[]): Promise<void> {
		if (events.length === 0) return;
		const db = await this.#db;
		const tx = db.transaction('history', 'readwrite');
		for (const event of events) void tx.store.put({ ...event }, [roomId, event.clientMsgId]);
		await tx.done;
	}

	/** The newest messages `roomId` showed last; none if not saved or unreadable. */
	async screen(roomId: string): Promise<ChatMessage[]> {
		const db = await this.#db;
		const parsed = z.array(screenMessage).safeParse(await db.get('screens', roomId));
		return parsed.success ? parsed.data : [];
	}

	async saveScreen(roomId: string, messages: ChatMessage[]): Promise<void> {
		const db = await this.#db;
		await db.put('screens', JSON.parse(JSON.stringify(messages)) as unknown, roomId);
	}

	async close(): Promise<void> {
		(await this.#db).close();
	}
}

/**
 * Deletes every local database of one account: its metadata and each room document. Room databases are
 * found by name where the browser can list databases, and from `knownRoomIds` everywhere.
 */
export async function wipeAccount(userId: string, knownRoomIds: Iterable<string>): Promise<void> {
	const names = new Set<string>([metaDatabaseName(userId), outgoingDatabaseName(userId)]);
	for (const roomId of knownRoomIds) names.add(roomDatabaseName(userId, roomId));
	if (typeof indexedDB.databases === 'function') {
		for (const info of await indexedDB.databases()) {
			if (info.name?.startsWith(roomDatabasePrefix(userId))) names.add(info.name);
		}
	}
	await Promise.all([...names].map((name) => deleteDatabase(name)));
}

/** Resolves once the database is gone; a `blocked` delete completes when the last connection closes. */
export function deleteDatabase(name: string): Promise<void> {
	return new Promise((resolve, reject) => {
		const request = indexedDB.deleteDatabase(name);
		request.onsuccess = () => resolve();
		request.onerror = () => reject(request.error ?? new Error(`could not delete ${name}`));
	});
}

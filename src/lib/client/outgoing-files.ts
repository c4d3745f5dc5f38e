import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import { attachmentRef, uploadId, type AttachmentRef } from '../protocol/events.ts';
import { limits } from '../protocol/limits.ts';
import { uuid } from '../protocol/ids.ts';
import { z } from '../protocol/zod.ts';

/*
 * Own messages with files that are not stored on the server yet (issue 19), kept on the device with the files'
 * bytes, so that a message written on a plane survives reloads and restarts and is sent when the device is online.
 * One database per account (`chat-files-<userId>`), deleted with the account's other data at sign-out.
 */

export const outgoingDatabaseName = (userId: string) => `chat-files-${userId}`;

/** One file on its way: its bytes, where its upload is on the server (to resume it), and what was stored. */
export const outgoingFile = z.object({
	/** Local id: the message's files are shown under it until stored. */
	key: z.string(),
	name: z.string(),
	/** The type the browser gave; the server sniffs the bytes and says what it stored. */
	type: z.string(),
	blob: z.instanceof(Blob),
	/** An image's size in pixels, read on the device, so that its preview takes its final place at once. */
	width: z.number().int().positive().optional(),
	height: z.number().int().positive().optional(),
	/** The upload's URL once the server made one: an interrupted upload resumes there. */
	uploadUrl: z.string().optional(),
	/** The stored file, once its last byte is in. */
	stored: attachmentRef.optional(),
});
export type OutgoingFile = z.infer<typeof outgoingFile>;

/** An own message waiting for its files: it is written to the room (with this id and time) once they are stored. */
export const outgoingMessage = z.object({
	clientMsgId: uuid,
	roomId: uuid,
	content: z.string(),
	replyToId: uuid.optional(),
	createdAt: z.string(),
	files: z.array(outgoingFile).min(1),
	/** Refused for good (a file too big, the quota, no longer a member): shown with a retry and a cancel. */
	failed: z.string().optional(),
});
export type OutgoingMessage = z.infer<typeof outgoingMessage>;

interface OutgoingSchema extends DBSchema {
	messages: { key: string; value: unknown; indexes: { room: string } };
}

/** The account's outgoing messages on this device. Rows read back are validated; a damaged one is skipped. */
export class OutgoingStore {
	readonly #db: Promise<IDBPDatabase<OutgoingSchema>>;

	constructor(userId: string) {
		this.#db = openDB<OutgoingSchema>(outgoingDatabaseName(userId), 1, {
			upgrade(db) {
				db.createObjectStore('messages', { keyPath: 'clientMsgId' }).createIndex('room', 'roomId');
			},
		});
	}

	/** A room's outgoing messages, oldest first. */
	async inRoom(roomId: string): Promise<OutgoingMessage[]> {
		const rows = await (await this.#db).getAllFromIndex('messages', 'room', roomId);
		return rows
			.flatMap((row) => {
				const parsed = outgoingMessage.safeParse(row);
				if (!parsed.success) console.warn('skipping an unreadable outgoing message', parsed.error);
				return parsed.success ? [parsed.data] : [];
			})
			.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
	}

	/** Rooms that have messages waiting: they are opened at start so that their files go out. */
	async rooms(): Promise<string[]> {
		const rooms = new Set<string>();
		const index = (await this.#db).transaction('messages').store.index('room');
		for (let cursor = await index.openKeyCursor(); cursor; cursor = await cursor.continue())
			rooms.add(cursor.key);
		return [...rooms];
	}

	async put(message: OutgoingMessage): Promise<void> {
		await (await this.#db).put('messages', message);
	}

	async delete(clientMsgId: string): Promise<void> {
		await (await this.#db).delete('messages', clientMsgId);
	}

	async close(): Promise<void> {
		(await this.#db).close();
	}
}

/** Opens (`open`) each room where this account has messages waiting for their files on this device. */
export function openWaitingRooms(userId: string, open: (roomId: string) => void): void {
	const store = new OutgoingStore(userId);
	void store
		.rooms()
		.then((ids) => ids.forEach(open))
		.catch((error: unknown) => console.warn('cannot read the files waiting to be sent', error))
		.finally(() => void store.close());
}

/** The stored file as a message event carries it. */
export function storedRefs(message: OutgoingMessage): AttachmentRef[] | null {
	const refs = message.files.map((f) => f.stored);
	return refs.every((ref): ref is AttachmentRef => ref !== undefined) ? refs : null;
}

/** What the upload's last answer says was stored (docs/protocol.md section 7). */
export function storedFile(
	file: OutgoingFile,
	header: (name: string) => string | undefined,
): AttachmentRef | null {
	const id = uploadId.safeParse(file.uploadUrl?.split('/').pop()).data;
	const mediaType = header('x-chat-media-type');
	const size = Number(header('x-chat-size'));
	if (!id || !mediaType || !Number.isSafeInteger(size)) return null;
	const width = Number(header('x-chat-width'));
	const height = Number(header('x-chat-height'));
	const placeholder = header('x-chat-placeholder');
	return {
		id,
		name: file.name,
		size,
		mediaType,
		...(width > 0 && height > 0 ? { width, height } : {}),
		...(placeholder ? { placeholder } : {}),
	};
}

/** A message without a caption says which files it carries (its content is never empty). */
export function contentOf(names: string[]): string {
	const text = names.join(', ');
	return text.length <= limits.contentMax ? text : `${text.slice(0, limits.contentMax - 1)}…`;
}

/** A file as kept on the device; an image's size in pixels is read here, so that its preview takes its place. */
export async function toOutgoingFile(file: File): Promise<OutgoingFile> {
	const size = file.type.startsWith('image/') ? await imageSize(file) : null;
	return {
		key: crypto.randomUUID(),
		name: safeName(file.name),
		type: file.type,
		// A copy of the bytes, not the File: a picked file may change or go before it is sent.
		blob: new Blob([await file.arrayBuffer()], { type: file.type }),
		...(size ?? {}),
	};
}

async function imageSize(file: Blob): Promise<{ width: number; height: number } | null> {
	try {
		const bitmap = await createImageBitmap(file);
		const size = { width: bitmap.width, height: bitmap.height };
		bitmap.close();
		return size.width > 0 && size.height > 0 ? size : null;
	} catch {
		return null; // not an image this browser can read: shown as a file until stored
	}
}

/** A name the server takes: one line, no path, at most 255 characters (a pasted image has none: it gets one). */
function safeName(name: string): string {
	const clean = name.replace(/[\p{Cc}/\\]+/gu, '_').trim();
	if (!clean) return `pasted-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}`;
	let short = '';
	for (const char of clean) {
		if (short.length + char.length > limits.attachmentNameMax) break;
		short += char;
	}
	return short;
}

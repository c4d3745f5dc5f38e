import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { attachmentName, mediaType } from '#protocol/events.ts';
import { uuid } from '#protocol/ids.ts';
import type { FileStore } from '@tus/file-store';
import { Server as TusServer } from '@tus/server';
import { fileTypeFromFile } from 'file-type';
import type { Logger } from 'pino';
import * as attachments from '../data/attachments.ts';
import * as rooms from '../data/rooms.ts';
import type { Db } from '../db/index.ts';
import { recordStored } from './blob-locks.ts';
import { hashStream, type BlobStore } from './blob-store.ts';
import { cleanImage, previewImage, UNREADABLE } from './images.ts';
import { PartialUploads } from './partials.ts';

/** The header through which the HTTP route tells the upload server who is uploading (set by the route only). */
export const UPLOADER_HEADER = 'x-chat-uploader';
/**
 * The headers of an upload's last answer: what the stored file is (its media type as found in its bytes, its size
 * after an image's metadata was taken out, an image's size in pixels and its placeholder, a ThumbHash in base64).
 * Its message's `attachments` say the same.
 */
export const FILE_HEADERS = {
	mediaType: 'x-chat-media-type',
	size: 'x-chat-size',
	width: 'x-chat-width',
	height: 'x-chat-height',
	placeholder: 'x-chat-placeholder',
} as const;
/** The headers that say what a finished upload stored (its last answer, and a HEAD once it is complete). */
export function finishedUploadHeaders(file: {
	mediaType: string;
	size: number;
	width: number | null;
	height: number | null;
	placeholder: string | null;
}): Record<string, string> {
	return {
		[FILE_HEADERS.mediaType]: file.mediaType,
		[FILE_HEADERS.size]: String(file.size),
		...(file.width && file.height
			? { [FILE_HEADERS.width]: String(file.width), [FILE_HEADERS.height]: String(file.height) }
			: {}),
		...(file.placeholder ? { [FILE_HEADERS.placeholder]: file.placeholder } : {}),
	};
}

/** Where the uploads are served; the route and the `Location` of each upload. */
export const UPLOADS_PATH = '/api/uploads';

/** A refusal as tus carries it to the client (the route turns it into the API's error shape). */
const refuse = (status_code: number, body: string) => ({ status_code, body });
const isRefusal = (error: unknown): error is ReturnType<typeof refuse> =>
	typeof error === 'object' && error !== null && 'status_code' in error;

/**
 * Resumable uploads of attachments with the tus protocol (`@tus/server`): an upload is created with its length and
 * its room, sent in as many requests as the connection allows, and resumed from the offset the server holds. The
 * bytes in flight are kept under `DATA_DIR/uploads` on this node; once the last byte is in, the file is hashed,
 * its media type sniffed from its bytes, stored in the blob store under its SHA-256 (an image's thumbnail under
 * its own) and the partial upload deleted.
 */
export class Uploads {
	/** The uploads in progress on this node (garbage collection removes the abandoned ones). */
	readonly partials: PartialUploads;
	readonly #tus: TusServer;
	readonly #store: FileStore;
	readonly #deps: { db: Db; blobs: BlobStore; log: Logger; maxBytes: number; quotaBytes: number };

	constructor(deps: {
		db: Db;
		blobs: BlobStore;
		log: Logger;
		dir: string;
		maxBytes: number;
		quotaBytes: number;
	}) {
		this.#deps = deps;
		this.partials = new PartialUploads(deps.dir);
		this.#store = this.partials.store;
		this.#tus = new TusServer({
			path: UPLOADS_PATH,
			datastore: this.#store,
			relativeLocation: true,
			maxSize: deps.maxBytes,
			// A finished upload is a stored file that a message may reference: it goes with garbage collection.
			disableTerminationForFinishedUploads: true,
			// The app calls from its own origin, where a page reads every header of an answer; listed anyway so that
			// the answer's own Access-Control-Expose-Headers does not leave out the headers its client reads.
			exposedHeaders: Object.values(FILE_HEADERS),
			onUploadCreate: (req, upload) => this.#create(req.headers.get(UPLOADER_HEADER), upload),
			// The last answer tells the client what the file is (sniffed from its bytes): its message says the same.
			onUploadFinish: async (_req, upload) => ({ headers: await this.#finish(upload.id) }),
		});
	}

	/** Answers one tus request (the route has authenticated it and set `UPLOADER_HEADER`). */
	handle(request: Request): Promise<Response> {
		return this.#tus.handleWeb(request);
	}

	/** Checks a new upload (who, which room, how big) and records it; throws a refusal. */
	async #create(
		uploaderId: string | null,
		upload: { id: string; size?: number; metadata?: Record<string, string | null> },
	): Promise<{ metadata?: Record<string, string | null> }> {
		const { db, quotaBytes } = this.#deps;
		if (!uploaderId) throw refuse(401, 'sign in first');
		const roomId = upload.metadata?.roomId ?? '';
		const name = upload.metadata?.filename ?? '';
		const declaredType = upload.metadata?.filetype || 'application/octet-stream';
		if (!uuid.safeParse(roomId).success)
			throw refuse(400, 'the upload names no room: metadata "roomId" must be a room id');
		if (!attachmentName.safeParse(name).success)
			throw refuse(400, 'metadata "filename" must be a file name of 1 to 255 characters, without / or \\');
		if (!mediaType.safeParse(declaredType).success)
			throw refuse(400, 'metadata "filetype" must be a media type');
		if (upload.size === undefined)
			throw refuse(400, 'say how long the file is (Upload-Length): uploads of unknown length are not taken');
		const role = await rooms.roleOf(db, roomId, uploaderId);
		if (!role) throw refuse(403, 'you are not a member of this room');
		if (role === 'readonly') throw refuse(403, 'you can only read this room');
		const used = await attachments.bytesOf(db, uploaderId);
		if (used + upload.size > quotaBytes)
			throw refuse(
				413,
				`this file (${megabytes(upload.size)}) does not fit in your storage: ${megabytes(used)} of ` +
					`${megabytes(quotaBytes)} used`,
			);
		await attachments.insert(db, {
			id: upload.id,
			roomId,
			uploaderId,
			name,
			size: upload.size,
			declaredType,
		});
		return {};
	}

	/**
	 * The last byte is in: sniff, take an image's metadata out, hash, store, make an image's thumbnail and
	 * placeholder, record, and drop the partial upload. Returns what the file is now, for the upload's last answer
	 * (its message must say the same).
	 */
	async #finish(id: string): Promise<Record<string, string>> {
		const { db, blobs, log } = this.#deps;
		const file = path.join(this.#store.directory, id);
		try {
			const sniffed = (await fileTypeFromFile(file))?.mime ?? 'application/octet-stream';
			const cleaned = await cleanImage(file, sniffed);
			if (cleaned === UNREADABLE)
				log.warn({ upload: id, mediaType: sniffed }, 'an image could not be read: stored as a download');
			// An image that could not be read may still carry its metadata: never shown inline, only downloaded.
			const mediaType = cleaned === UNREADABLE ? 'application/octet-stream' : sniffed;
			const image = cleaned === UNREADABLE ? null : cleaned;
			const { hash, size } = await hashStream(fs.createReadStream(file));
			const source = () => fs.createReadStream(file);
			await blobs.put(hash, source);
			const preview = image ? await this.#preview(id, file) : null;
			// Recorded under the blobs' locks, so that garbage collection cannot delete them in between (blob-locks.ts).
			const stored = [
				{ hash, source },
				...(preview ? [{ hash: preview.thumbSha256, source: preview.source }] : []),
			];
			const recorded = await recordStored(db, blobs, stored, (tx) =>
				attachments.complete(tx, id, {
					sha256: hash,
					size,
					mediaType,
					width: image?.width ?? null,
					height: image?.height ?? null,
					thumbSha256: preview?.thumbSha256 ?? null,
					placeholder: preview?.placeholder ?? null,
				}),
			);
			await this.partials.remove(id);
			// Its row was collected as abandoned while the last bytes came (or its room was deleted): the bytes
			// just stored are unused, and go with the next collection.
			if (!recorded) throw refuse(410, 'this upload was abandoned and discarded: send the file again');
			return finishedUploadHeaders({
				mediaType,
				size,
				width: image?.width ?? null,
				height: image?.height ?? null,
				placeholder: preview?.placeholder ?? null,
			});
		} catch (error) {
			if (isRefusal(error)) throw error;
			log.error({ err: error, upload: id }, 'cannot store a finished upload');
			throw refuse(503, 'the file arrived but could not be stored; try again shortly');
		}
	}

	/**
	 * A stored image's thumbnail, put in the blob store under its own SHA-256, and its placeholder. Null when they
	 * cannot be made or stored: the image is stored without them (its messages show it whole, without a blur first).
	 */
	async #preview(
		id: string,
		file: string,
	): Promise<{ thumbSha256: string; placeholder: string; source: () => Readable } | null> {
		const { blobs, log } = this.#deps;
		try {
			const { thumbnail, placeholder } = await previewImage(file);
			// A few dozen kilobytes at most (480×480 WebP): hashed and stored from memory.
			const thumbSha256 = createHash('sha256').update(thumbnail).digest('hex');
			const source = () => Readable.from([thumbnail]);
			await blobs.put(thumbSha256, source);
			return { thumbSha256, placeholder, source };
		} catch (error) {
			log.warn({ err: error, upload: id }, 'cannot make a thumbnail: the image is stored without one');
			return null;
		}
	}
}

/** A size for people: `3.4 MB`, `25 MB` (whole from 10 MB up). */
export function megabytes(bytes: number): string {
	return `${(bytes / 1024 / 1024).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MB`;
}

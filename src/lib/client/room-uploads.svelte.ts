import { DetailedError, Upload } from 'tus-js-client';
import type { AttachmentRef } from '../protocol/events.ts';
import { limits } from '../protocol/limits.ts';
import { jitter, RETRY_MAX_MS, RETRY_MIN_MS, type ChatMessage, type ChatUpload } from '../sync/model.ts';
import * as clock from './clock.ts';
import { formatBytes } from './format.ts';
import {
	contentOf,
	storedFile,
	storedRefs,
	toOutgoingFile,
	type OutgoingFile,
	type OutgoingMessage,
	type OutgoingStore,
} from './outgoing-files.ts';
import { filtered, normaliseContent } from './room-model.ts';
import { serverConfig } from './server-config.svelte.ts';
import { session } from './session.svelte.ts';

/** Progress is shown at most this often while bytes go out (a room of thousands re-sorts on each change). */
const PROGRESS_EVERY_MS = 150;

/** What the room gives its uploads: where to write a message once its files are stored, and what it holds. */
export interface UploadHost {
	roomId: string;
	userId: string;
	store: OutgoingStore;
	/** Writes the message event (with this id and time); throws with a reason the user can read. */
	write(message: OutgoingMessage, attachments: AttachmentRef[]): void;
	/** The room already holds this message (written before the device stopped, its record not yet deleted). */
	has(clientMsgId: string): boolean;
	/** A change to show. */
	changed(): void;
}

/**
 * A room's own messages with files (issue 19): kept on the device with their bytes (`OutgoingStore`) until every
 * file is uploaded (tus, resumable: an interrupted upload goes on from its last stored byte, across reloads), and
 * only then written to the room, so that no member ever sees a message whose file is missing. Shown meanwhile,
 * to their sender only, with a local preview and their state: waiting for a connection, uploading, or failed
 * (with the reason, a retry and a cancel).
 */
export class RoomUploads {
	/** The waiting messages as the room shows them, oldest first. */
	messages = $state.raw<ChatMessage[]>([]);

	readonly #host: UploadHost;
	readonly #records = new Map<string, OutgoingMessage>();
	/** Bytes sent of each file (by its key) in this session. */
	readonly #sent = new Map<string, number>();
	/** Object URLs of the files, for previews; revoked once the message is written or cancelled. */
	readonly #urls = new Map<string, string>();
	readonly #active = new Map<string, Upload>();
	#running: Promise<void> | null = null;
	/** Asked to resume while running: run again after (a message added meanwhile may have been missed). */
	#again = false;
	#offline = false;
	#retryMs = RETRY_MIN_MS;
	#retryTimer: ReturnType<typeof setTimeout> | undefined;
	#publishTimer: ReturnType<typeof setTimeout> | undefined;
	#closed = false;
	readonly #loaded: Promise<void>;

	constructor(host: UploadHost) {
		this.#host = host;
		this.#loaded = host.store
			.inRoom(host.roomId)
			.then((records) => {
				for (const record of records) this.#records.set(record.clientMsgId, record);
				this.#publish();
			})
			.catch((error: unknown) => console.warn('cannot read the files waiting to be sent', error));
	}

	get count(): number {
		return this.#records.size;
	}

	/**
	 * A new message with `files` and an optional caption: kept on the device at once (shown from now on), then sent.
	 * Throws with a reason the user can read (too many files, one too big, words the server refuses).
	 */
	async add(files: File[], caption: string, replyToId?: string): Promise<string> {
		if (files.length === 0) throw new Error('Choose at least one file.');
		if (files.length > limits.attachmentsPerMessage)
			throw new Error(`A message can carry up to ${limits.attachmentsPerMessage} files.`);
		const max = serverConfig.attachmentMaxBytes;
		const tooBig = files.find((f) => f.size > max);
		if (tooBig)
			throw new Error(
				`${tooBig.name} is ${formatBytes(tooBig.size)}; files of up to ${formatBytes(max)} can be sent.`,
			);
		const text = normaliseContent(caption);
		const content = filtered(text || contentOf(files.map((f) => f.name)));
		if (content.length > limits.contentMax)
			throw new Error(`The caption is longer than ${limits.contentMax} characters.`);
		const record: OutgoingMessage = {
			clientMsgId: crypto.randomUUID(),
			roomId: this.#host.roomId,
			content,
			...(replyToId ? { replyToId } : {}),
			createdAt: new Date(clock.serverNow()).toISOString(),
			files: await Promise.all(files.map(toOutgoingFile)),
		};
		await this.#loaded;
		await this.#host.store.put(record);
		this.#records.set(record.clientMsgId, record);
		this.#publish();
		this.resume();
		return record.clientMsgId;
	}

	/** Takes a waiting message back: its uploads stop (and are deleted on the server) and it is gone. */
	async cancel(clientMsgId: string): Promise<void> {
		const record = this.#records.get(clientMsgId);
		if (!record) return;
		this.#records.delete(clientMsgId);
		this.#publish();
		for (const file of record.files) {
			const upload = this.#active.get(file.key);
			this.#active.delete(file.key);
			// `abort(true)` also deletes the partial upload on the server.
			if (upload) await upload.abort(true).catch(() => undefined);
			this.#forgetFile(file.key);
		}
		await this.#host.store.delete(clientMsgId);
	}

	/** Tries a failed message again, from where its files are. */
	async retry(clientMsgId: string): Promise<void> {
		const record = this.#records.get(clientMsgId);
		if (!record?.failed) return;
		const again = { ...record };
		delete again.failed;
		this.#records.set(clientMsgId, again);
		await this.#host.store.put(again);
		this.#publish();
		this.resume();
	}

	/** The device may be online (the room synced, the browser went online): sends what waits, one at a time. */
	resume(): void {
		if (this.#closed) return;
		if (this.#running) {
			this.#again = true;
			return;
		}
		this.#running = this.#run().finally(() => {
			this.#running = null;
			if (this.#again) {
				this.#again = false;
				this.resume();
			}
		});
	}

	close(): void {
		this.#closed = true;
		clearTimeout(this.#retryTimer);
		clearTimeout(this.#publishTimer);
		for (const upload of this.#active.values()) void upload.abort(false);
		this.#active.clear();
		for (const url of this.#urls.values()) URL.revokeObjectURL(url);
		this.#urls.clear();
	}

	async #run(): Promise<void> {
		await this.#loaded;
		// Offline, an upload would only fail after its retries: wait for the `online` event or the room's sync.
		if (!navigator.onLine) {
			this.#offline = true;
			this.#publish();
			return;
		}
		this.#offline = false;
		for (const id of [...this.#records.keys()]) {
			const record = this.#records.get(id);
			if (!record || record.failed || this.#closed) continue;
			if (this.#host.has(id)) {
				await this.#finish(record);
				continue;
			}
			try {
				for (const file of record.files) if (!file.stored) await this.#upload(record, file);
				const refs = storedRefs(record);
				if (!refs || !this.#records.has(id)) continue;
				try {
					this.#host.write(record, refs);
				} catch (error) {
					// The room will not take it (read-only now, words its filter refuses): the user decides.
					await this.#fail(record, error instanceof Error ? error.message : 'This message cannot be sent.');
					continue;
				}
				await this.#finish(record);
				this.#retryMs = RETRY_MIN_MS;
			} catch (error) {
				if (!this.#records.has(id)) continue; // cancelled meanwhile
				const reason = refusal(error);
				if (reason) {
					await this.#fail(record, reason);
					continue;
				}
				// No connection (or the server is away): everything waits, and is tried again later.
				this.#offline = true;
				this.#publish();
				this.#retryLater();
				return;
			}
		}
	}

	/** Uploads one file (resuming its upload if it has one) and keeps what the server stored. */
	#upload(record: OutgoingMessage, file: OutgoingFile): Promise<void> {
		return new Promise<void>((resolve, reject) => {
			const upload = new Upload(file.blob, {
				endpoint: '/api/uploads',
				...(file.uploadUrl ? { uploadUrl: file.uploadUrl } : {}),
				metadata: {
					roomId: record.roomId,
					filename: file.name,
					filetype: file.type || 'application/octet-stream',
				},
				retryDelays: [0, 1_000, 3_000],
				storeFingerprintForResuming: false,
				onBeforeRequest: async (request) => {
					request.setHeader('Authorization', `Bearer ${await session.accessToken()}`);
				},
				onUploadUrlAvailable: () => {
					if (!upload.url || upload.url === file.uploadUrl) return;
					file.uploadUrl = upload.url;
					void this.#host.store.put(record);
				},
				onProgress: (sent) => {
					this.#offline = false;
					this.#sent.set(file.key, sent);
					this.#publishSoon();
				},
				onSuccess: ({ lastResponse }) => {
					this.#active.delete(file.key);
					const stored = storedFile(file, (name) => lastResponse.getHeader(name));
					if (!stored) {
						reject(new UploadRefused('the server did not say how it stored the file'));
						return;
					}
					file.stored = stored;
					this.#sent.set(file.key, file.blob.size);
					void this.#host.store.put(record).then(resolve, reject);
				},
				onError: (error) => {
					this.#active.delete(file.key);
					reject(error);
				},
			});
			this.#active.set(file.key, upload);
			upload.start();
		});
	}

	async #finish(record: OutgoingMessage): Promise<void> {
		this.#records.delete(record.clientMsgId);
		for (const file of record.files) this.#forgetFile(file.key);
		await this.#host.store.delete(record.clientMsgId);
		this.#publish();
	}

	async #fail(record: OutgoingMessage, reason: string): Promise<void> {
		const failed = { ...record, failed: reason };
		this.#records.set(record.clientMsgId, failed);
		await this.#host.store.put(failed);
		this.#publish();
	}

	#retryLater(): void {
		clearTimeout(this.#retryTimer);
		this.#retryTimer = setTimeout(() => this.resume(), jitter(this.#retryMs));
		this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
	}

	#forgetFile(key: string): void {
		this.#sent.delete(key);
		const url = this.#urls.get(key);
		if (url) URL.revokeObjectURL(url);
		this.#urls.delete(key);
	}

	#publishSoon(): void {
		this.#publishTimer ??= setTimeout(() => this.#publish(), PROGRESS_EVERY_MS);
	}

	#publish(): void {
		clearTimeout(this.#publishTimer);
		this.#publishTimer = undefined;
		this.messages = [...this.#records.values()].map((record) => this.#show(record));
		this.#host.changed();
	}

	#show(record: OutgoingMessage): ChatMessage {
		const total = record.files.reduce((sum, f) => sum + f.blob.size, 0);
		const sent = record.files.reduce(
			(sum, f) => sum + (f.stored ? f.blob.size : (this.#sent.get(f.key) ?? 0)),
			0,
		);
		const uploading = record.files.some((f) => this.#active.has(f.key));
		const upload: ChatUpload = record.failed
			? { state: 'failed', progress: sent / (total || 1), reason: record.failed }
			: {
					state: uploading && !this.#offline ? 'uploading' : 'waiting',
					progress: sent / (total || 1),
				};
		return {
			clientMsgId: record.clientMsgId,
			senderId: this.#host.userId,
			content: record.content,
			createdAt: record.createdAt,
			at: Date.parse(record.createdAt),
			...(record.replyToId ? { replyToId: record.replyToId } : {}),
			own: true,
			status: record.failed ? 'failed' : 'pending',
			...(record.failed ? { reason: record.failed } : {}),
			reactions: [],
			attachments: record.files.map((f) => ({
				id: f.key,
				name: f.name,
				size: f.blob.size,
				mediaType: f.stored?.mediaType ?? (f.type || 'application/octet-stream'),
				...(f.width && f.height ? { width: f.width, height: f.height } : {}),
				localUrl: this.#urlOf(f),
			})),
			upload,
		};
	}

	#urlOf(file: OutgoingFile): string {
		let url = this.#urls.get(file.key);
		if (!url) {
			url = URL.createObjectURL(file.blob);
			this.#urls.set(file.key, url);
		}
		return url;
	}
}

/** A refusal the user must act on (too big, the quota, not a member): not retried by itself. */
class UploadRefused extends Error {}

/** Why the server refused an upload for good, or null when it may go through later (offline, a server away). */
function refusal(error: unknown): string | null {
	if (error instanceof UploadRefused) return error.message;
	if (!(error instanceof DetailedError) || !error.originalResponse) return null;
	const status = error.originalResponse.getStatus();
	// Not signed in (a token being renewed), a conflict, a lock, too many requests, a server error: later.
	if (status < 400 || status >= 500 || [401, 408, 409, 423, 429].includes(status)) return null;
	try {
		const body = JSON.parse(error.originalResponse.getBody()) as { error?: { message?: unknown } };
		if (typeof body.error?.message === 'string') return `Not sent: ${body.error.message}.`;
	} catch {
		// Not our error shape.
	}
	return `Not sent: the server refused the file (${status}).`;
}

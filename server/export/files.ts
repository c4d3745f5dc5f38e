import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ExportedAttachment, ExportRow } from '#protocol/api.ts';
import { BlobNotFound, Hashing, type BlobStore } from '../files/blob-store.ts';

/**
 * `npm run export -- --with-files`: the bytes of every file the exported messages list, copied from the blob store
 * into one directory beside the export, each as `<id>-<name>` (the upload id, the same as in the file's `url`, and
 * its name made safe: `safeFileName`). One batch of rows at a time, a few files at once, each streamed: memory
 * stays bounded whatever the files' sizes.
 *
 * A file is written under its name only once all its bytes are there and hash to the SHA-256 the export lists,
 * so a file in the directory is always complete and right, and one already there (the same export run again, or
 * a file two messages carry) is not copied again. A file the server no longer holds is reported and counted, and
 * the copy goes on; anything else (the store unreachable, the disk full) stops the export.
 */

/** Files copied at once: enough to hide an object store's latency, few enough to keep open streams bounded. */
const PARALLEL = 4;

/** At most this many bytes of the name's UTF-8 after `<id>-` (a file name has 255 on common file systems). */
const NAME_BYTES = 180;

const UPLOAD_ID = /^[0-9a-f]{32}$/;

/**
 * A file's name as one safe path component: no separators, control or format characters (a right-to-left override
 * would make `gpj.exe` look like `exe.jpg`), nothing Windows refuses (`<>:"|?*`, a trailing dot or space), at most
 * NAME_BYTES of UTF-8 with its extension kept. Prefixed with the upload id, it can never be `.`, `..` or hidden.
 */
export function safeFileName(name: string): string {
	let safe = name
		.normalize('NFC')
		.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}/\\<>:"|?*]/gu, '_')
		.replace(/[. ]+$/u, '');
	if (Buffer.byteLength(safe) > NAME_BYTES) {
		const dot = safe.lastIndexOf('.');
		const ext = dot > 0 && safe.length - dot <= 16 ? safe.slice(dot) : '';
		let stem = safe.slice(0, safe.length - ext.length);
		const room = NAME_BYTES - Buffer.byteLength(ext);
		// By code points, so a character is never cut in half.
		while (Buffer.byteLength(stem) > room) stem = [...stem].slice(0, -1).join('');
		safe = stem + ext;
	}
	return safe === '' ? 'file' : safe;
}

/** The name a file gets in the files directory. */
export function exportedFileName(file: Pick<ExportedAttachment, 'id' | 'name'>): string {
	if (!UPLOAD_ID.test(file.id)) throw new Error(`not an upload id: ${JSON.stringify(file.id)}`);
	return `${file.id}-${safeFileName(file.name)}`;
}

export interface FileCopyStats {
	/** Files written by this run, and their bytes. */
	written: number;
	bytes: number;
	/** Files that were in the directory already, complete. */
	present: number;
	/** Files that could not be copied: not held by the server, or whose stored bytes are not what was listed. */
	missing: number;
}

export class FileCopier {
	readonly stats: FileCopyStats = { written: 0, bytes: 0, present: 0, missing: 0 };
	readonly dir: string;
	readonly #store: () => BlobStore;
	readonly #signal: AbortSignal;
	readonly #report: (line: string) => void;
	readonly #onFile: () => void;

	constructor(options: {
		/** The directory to write into (created when the first file comes). */
		dir: string;
		/** The blob store, opened when the first file is copied (a room without files needs none). */
		store: () => BlobStore;
		signal: AbortSignal;
		/** One line per file that could not be copied. */
		report: (line: string) => void;
		/** After each file (progress). */
		onFile?: () => void;
	}) {
		this.dir = path.resolve(options.dir);
		this.#store = options.store;
		this.#signal = options.signal;
		this.#report = options.report;
		this.#onFile = options.onFile ?? (() => {});
	}

	/** Copies the files a batch of exported rows lists; resolves once all are written (or counted as missing). */
	async copy(rows: ExportRow[]): Promise<void> {
		const files = new Map<string, { file: ExportedAttachment; message: string }>();
		for (const row of rows)
			for (const file of row.attachments ?? [])
				if (!files.has(file.id)) files.set(file.id, { file, message: row.clientMsgId });
		if (files.size === 0) return;
		await fs.promises.mkdir(this.dir, { recursive: true });
		const queue = [...files.values()];
		const worker = async () => {
			for (let next = queue.shift(); next; next = queue.shift()) {
				this.#signal.throwIfAborted();
				await this.#copyOne(next.file, next.message);
				this.#onFile();
			}
		};
		await Promise.all(Array.from({ length: Math.min(PARALLEL, queue.length) }, worker));
	}

	async #copyOne(file: ExportedAttachment, message: string): Promise<void> {
		const name = exportedFileName(file);
		const target = path.join(this.dir, name);
		// Belt and braces: the name is one component of the directory, whatever it was made from.
		if (path.dirname(target) !== this.dir) throw new Error(`unsafe file name ${JSON.stringify(name)}`);
		const missing = (why: string) => {
			this.stats.missing++;
			this.#report(`export: file ${file.id} (${JSON.stringify(file.name)}) of message ${message}: ${why}`);
		};
		if (file.sha256 === null) return missing('the server no longer holds it');
		const existing = await fs.promises.stat(target).catch(() => null);
		if (existing?.isFile() && existing.size === file.size) {
			this.stats.present++;
			return;
		}

		let source;
		try {
			source = await this.#store().read(file.sha256);
		} catch (error) {
			if (error instanceof BlobNotFound) return missing(`not in the blob store (sha256 ${file.sha256})`);
			throw error;
		}
		const temporary = path.join(this.dir, `.${file.id}.${randomBytes(4).toString('hex')}.partial`);
		const hashing = new Hashing();
		try {
			await pipeline(source, hashing, fs.createWriteStream(temporary, { flags: 'wx', flush: true }), {
				signal: this.#signal,
			});
			const actual = hashing.digest();
			if (actual !== file.sha256) {
				await fs.promises.rm(temporary, { force: true });
				return missing(`the stored bytes hash to ${actual}, not to ${file.sha256}: not written`);
			}
			await fs.promises.rename(temporary, target);
		} catch (error) {
			await fs.promises.rm(temporary, { force: true });
			throw error;
		}
		this.stats.written++;
		this.stats.bytes += hashing.bytes;
	}
}

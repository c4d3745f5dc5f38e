import fs from 'node:fs';
import path from 'node:path';
import { FileStore } from '@tus/file-store';

/** An upload's id (the attachment's): 32 hex digits, never a path. */
const UPLOAD_ID = /^[0-9a-f]{32}$/;

/**
 * The bytes of uploads in progress on this node, under `DATA_DIR/uploads`: tus's file store, where each upload is
 * a file `<id>` beside its record `<id>.json`. The upload server writes them (uploads.ts); garbage collection
 * (collect.ts) lists them and removes the ones whose upload was abandoned.
 */
export class PartialUploads {
	readonly store: FileStore;

	constructor(dir: string) {
		fs.mkdirSync(dir, { recursive: true });
		this.store = new FileStore({ directory: dir });
	}

	get directory(): string {
		return this.store.directory;
	}

	/** The ids of the uploads held here (those with their record: a file alone is being created or removed). */
	async list(): Promise<string[]> {
		const names = new Set(await fs.promises.readdir(this.directory));
		return [...names].filter((name) => UPLOAD_ID.test(name) && names.has(`${name}.json`));
	}

	/**
	 * Removes an upload's bytes and its record. Resolves the bytes freed, or null when it was gone already (another
	 * node sharing the directory, or the upload server, removed it first).
	 */
	async remove(id: string): Promise<number | null> {
		if (!UPLOAD_ID.test(id)) throw new TypeError(`not an upload id: ${JSON.stringify(id)}`);
		const file = path.join(this.directory, id);
		const bytes = await fs.promises.stat(file).then(
			(stat) => stat.size,
			() => null,
		);
		try {
			await this.store.remove(id);
			return bytes;
		} catch {
			// The file store removes the bytes first and then the record: a record left alone goes too.
			await fs.promises.rm(`${file}.json`, { force: true });
			return null;
		}
	}
}

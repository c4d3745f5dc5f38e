import { session } from './session.svelte.ts';

/** The browser cache (Cache Storage) that keeps files already seen, so that they show offline too. */
const CACHE_NAME = 'chat-files-v1';
/** What is in it: each entry's size and when it was last shown (least recently shown goes first). */
const INDEX_KEY = 'chat.fileCache';
const BUDGET_KEY = 'chat.fileCacheBudget';
export const DEFAULT_BUDGET_BYTES = 200 * 1024 * 1024;

type Index = Record<string, { size: number; at: number }>;

/** Which form of a stored file: the file itself, or the server's small WebP of an image (at most 480 px). */
export type FileVariant = 'file' | 'thumb';

/**
 * Stored files (issue 19) as the app shows them. The server serves them to members only, with the access token
 * (`/api/files/:id`, `/thumb`), so they are fetched here and handed to the page as object URLs. Files once seen stay
 * in a device cache within a budget the user sees and can clear (the account page): the least recently shown go
 * first. Stored files never change (their id names their bytes), so a kept copy is always right. Cleared at
 * sign-out with the rest of the account's data.
 */
class FileCache {
	/** Bytes kept on this device now. */
	usage = $state(0);
	/** How many bytes may be kept; the least recently shown files go first beyond it. */
	budget = $state(DEFAULT_BUDGET_BYTES);

	/** Object URLs handed out, by path; one fetch at a time per path. */
	readonly #urls = new Map<string, Promise<string>>();
	#index: Index = {};
	/** Bumped by `clear`: a fetch that began before it keeps nothing, nor counts what it found. */
	#generation = 0;

	constructor() {
		if (typeof localStorage === 'undefined') return;
		try {
			this.#index = JSON.parse(localStorage.getItem(INDEX_KEY) ?? '{}') as Index;
			const budget = Number(localStorage.getItem(BUDGET_KEY));
			if (Number.isSafeInteger(budget) && budget > 0) this.budget = budget;
		} catch {
			this.#index = {};
		}
		this.usage = Object.values(this.#index).reduce((sum, e) => sum + (e.size || 0), 0);
		session.onSignOut(() => this.clear());
	}

	/**
	 * A URL the page can show: the kept copy, or fetched (and kept). A thumbnail the server does not have (an old
	 * file, an image it could not read) falls back to the file itself. Rejects when it is not readable.
	 */
	url(id: string, variant: FileVariant = 'file'): Promise<string> {
		const path = filePath(id, variant);
		let url = this.#urls.get(path);
		if (!url) {
			url = this.#blob(path, variant === 'thumb' ? filePath(id, 'file') : null).then((blob) =>
				URL.createObjectURL(blob),
			);
			this.#urls.set(path, url);
			url.catch(() => this.#urls.delete(path));
		}
		return url;
	}

	/** The file's bytes (to save it), kept or fetched. */
	blob(id: string): Promise<Blob> {
		return this.#blob(filePath(id, 'file'), null);
	}

	setBudget(bytes: number): void {
		this.budget = bytes;
		localStorage.setItem(BUDGET_KEY, String(bytes));
		void this.#trim();
	}

	/** Deletes every kept file from this device (they are fetched again when shown online). */
	async clear(): Promise<void> {
		this.#generation++;
		this.#index = {};
		this.#save();
		for (const url of this.#urls.values()) void url.then(URL.revokeObjectURL, () => undefined);
		this.#urls.clear();
		if (typeof caches !== 'undefined') await caches.delete(CACHE_NAME);
	}

	async #blob(path: string, fallback: string | null): Promise<Blob> {
		const generation = this.#generation;
		const current = () => generation === this.#generation;
		const cache = typeof caches === 'undefined' ? null : await caches.open(CACHE_NAME).catch(() => null);
		const kept = await cache?.match(path);
		if (kept) {
			if (current()) this.#touch(path, Number(kept.headers.get('content-length')) || 0);
			return kept.blob();
		}
		const response = await fetch(path, {
			headers: { Authorization: `Bearer ${await session.accessToken()}` },
		});
		if (response.status === 404 && fallback) return this.#blob(fallback, null);
		if (!response.ok) throw new Error(`the file cannot be read (${response.status})`);
		const blob = await response.blob();
		// Cleared meanwhile: the user asked for nothing to be kept, and this fetch began before.
		if (cache && current()) {
			await cache
				.put(path, new Response(blob, { headers: { 'content-length': String(blob.size) } }))
				.then(() => {
					if (!current()) return;
					this.#touch(path, blob.size);
					return this.#trim();
				})
				.catch((error: unknown) => console.warn('cannot keep the file on this device', error));
		}
		return blob;
	}

	#touch(path: string, size: number): void {
		this.#index[path] = { size, at: Date.now() };
		this.#save();
	}

	/** Over the budget: the least recently shown files go until it fits. */
	async #trim(): Promise<void> {
		if (this.usage <= this.budget || typeof caches === 'undefined') return;
		const cache = await caches.open(CACHE_NAME);
		const oldestFirst = Object.entries(this.#index).sort(([, a], [, b]) => a.at - b.at);
		for (const [path] of oldestFirst) {
			if (this.usage <= this.budget) break;
			delete this.#index[path];
			this.#save();
			await cache.delete(path);
		}
	}

	#save(): void {
		this.usage = Object.values(this.#index).reduce((sum, e) => sum + (e.size || 0), 0);
		try {
			localStorage.setItem(INDEX_KEY, JSON.stringify(this.#index));
		} catch {
			// Storage full: the index is rebuilt as files are shown again.
		}
	}
}

function filePath(id: string, variant: FileVariant): string {
	return variant === 'thumb' ? `/api/files/${id}/thumb` : `/api/files/${id}`;
}

export const fileCache = new FileCache();

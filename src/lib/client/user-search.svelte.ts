import { ApiError, usersApi } from './api.ts';
import type { UserHit } from './schemas.ts';

const DEBOUNCE_MS = 200;

/** Finding people by name, for starting a chat or adding members: debounced, latest query wins. */
export class UserSearch {
	query = $state('');
	results = $state.raw<UserHit[]>([]);
	loading = $state(false);
	error = $state<string | null>(null);

	readonly #excludeIds: () => Set<string>;
	#timer: ReturnType<typeof setTimeout> | undefined;
	#abort: AbortController | null = null;

	/** `excludeIds` lists users not to offer (yourself, existing members). */
	constructor(excludeIds: () => Set<string>) {
		this.#excludeIds = excludeIds;
	}

	set(query: string): void {
		this.query = query;
		clearTimeout(this.#timer);
		this.#abort?.abort();
		if (!query.trim()) {
			this.results = [];
			this.loading = false;
			this.error = null;
			return;
		}
		this.loading = true;
		this.#timer = setTimeout(() => void this.#run(query.trim()), DEBOUNCE_MS);
	}

	async #run(query: string): Promise<void> {
		const abort = new AbortController();
		this.#abort = abort;
		try {
			const hits = await usersApi.search(query, abort.signal);
			const exclude = this.#excludeIds();
			this.results = hits.filter((u) => !exclude.has(u.id));
			this.error = null;
		} catch (error) {
			if (abort.signal.aborted) return;
			this.error =
				error instanceof ApiError && error.isNetwork ? 'You are offline.' : 'The search failed; try again.';
		} finally {
			if (this.#abort === abort) this.loading = false;
		}
	}

	dispose(): void {
		clearTimeout(this.#timer);
		this.#abort?.abort();
	}
}

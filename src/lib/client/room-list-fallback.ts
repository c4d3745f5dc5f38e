import { ApiError, roomsApi } from './api.ts';
import { FALLBACK_AFTER_MS } from './room-access.svelte.ts';
import type { RoomSummary } from './schemas.ts';
import { session } from './session.svelte.ts';
import { userChannel } from './user-channel.svelte.ts';

export interface FallbackHost {
	/** The account's data is open (a list can be applied). */
	active(): boolean;
	apply(list: RoomSummary[]): void;
	failed(message: string): void;
}

/**
 * The room list from the API, for while the user channel is not connected (a server without it, a socket that
 * is down). An answer older than something the channel said is dropped: the channel's word is newer.
 */
export class ListFallback {
	readonly #host: FallbackHost;
	/** Counts what superseded earlier answers (the channel's changes, a stop). */
	#generation = 0;
	#refreshing: Promise<void> | null = null;
	#timer: ReturnType<typeof setTimeout> | undefined;

	constructor(host: FallbackHost) {
		this.#host = host;
	}

	/** The channel changed the list: answers asked for before are older than that. */
	superseded(): void {
		this.#generation++;
	}

	/** Asks the API if the channel has not delivered the list shortly. */
	soon(): void {
		clearTimeout(this.#timer);
		this.#timer = setTimeout(() => {
			if (userChannel.status !== 'live') void this.refresh();
		}, FALLBACK_AFTER_MS);
	}

	/** Fetches the list now (one request at a time); offline, the cached list stays. */
	refresh(): Promise<void> {
		this.#refreshing ??= this.#refresh().finally(() => {
			this.#refreshing = null;
		});
		return this.#refreshing;
	}

	stop(): void {
		clearTimeout(this.#timer);
		this.#generation++;
	}

	async #refresh(): Promise<void> {
		if (!navigator.onLine || !this.#host.active()) return;
		if (session.tokenless) {
			// No token yet (an offline start): the cached list stays; a later `online` retries.
			await session.accessToken().catch(() => undefined);
			if (session.tokenless) return;
		}
		const generation = this.#generation;
		try {
			const list = await roomsApi.list();
			if (this.#generation !== generation || !this.#host.active()) return;
			this.#host.apply(list);
		} catch (error) {
			if (error instanceof ApiError && error.isNetwork) return;
			this.#host.failed(error instanceof Error ? error.message : String(error));
		}
	}
}

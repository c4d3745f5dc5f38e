import type { RoomEvent } from '../protocol/events.ts';
import { limits } from '../protocol/limits.ts';
import type { HistorySource, SyncMeta } from './ports.ts';

export interface HistoryHost {
	readonly roomId: string;
	readonly meta: SyncMeta;
	readonly source: HistorySource;
	/** The live document holds this event. */
	known(clientMsgId: string): boolean;
	/** Events came in (`events`), or the paging state changed (none). */
	changed(events: RoomEvent[]): void;
}

/**
 * A room's history beyond its live document: events the server trimmed from the document, and older pages
 * brought in from the server's mirror, all kept on the device so the room shows them offline too.
 */
export class RoomHistory {
	/** Events no longer in the live document (trimmed by the server) or paged in from its history. */
	readonly events = new Map<string, RoomEvent>();
	/** The server may hold messages older than what this device shows. */
	hasOlder = true;
	loadingOlder = false;
	/** Where the next page ends (`before`); undefined: not asked yet, null: nothing older. */
	#cursor: number | null | undefined = undefined;
	readonly #host: HistoryHost;

	constructor(host: HistoryHost) {
		this.#host = host;
	}

	/**
	 * Whether the server may hold messages older than the device shows: not once the room was synced with nothing in
	 * history and `shown` messages fewer than the server's window (`windowMessages`): the server never trimmed it,
	 * and what it trims later this device keeps. Once known, it stays known (a dropped connection changes nothing).
	 */
	mayHaveOlder(synced: boolean, shown: number, windowMessages: number): boolean {
		if (this.hasOlder && synced && this.events.size === 0 && shown < windowMessages) this.hasOlder = false;
		return this.hasOlder;
	}

	/** What the device kept from earlier sessions (events already known stay as they are). */
	restore(events: RoomEvent[]): void {
		const fresh = events.filter((e) => !this.events.has(e.clientMsgId));
		for (const e of fresh) this.events.set(e.clientMsgId, e);
		if (fresh.length > 0) this.#host.changed(fresh);
	}

	/** Keeps events that left the live document, here and on the device. */
	keep(events: RoomEvent[]): void {
		if (events.length === 0) return;
		for (const e of events) this.events.set(e.clientMsgId, e);
		void this.#host.meta
			.addHistory(this.#host.roomId, events)
			.catch((error: unknown) => console.warn('cannot save history', error));
	}

	/**
	 * Brings in the next page of older history from the server (the Postgres mirror), keeps it on the device and
	 * shows it. Returns how many messages it added; 0 when there is nothing older, a page is already coming, or
	 * the server is away.
	 */
	async loadOlder(): Promise<number> {
		if (!this.hasOlder || this.loadingOlder) return 0;
		this.#setLoading(true);
		const { roomId, known, source } = this.#host;
		try {
			const page = await source(roomId, this.#cursor ?? undefined, limits.historyPageSize);
			const events = page.events.filter((e) => !known(e.clientMsgId) && !this.events.has(e.clientMsgId));
			this.#cursor = page.nextBefore;
			if (page.nextBefore === null) this.hasOlder = false;
			this.keep(events);
			this.loadingOlder = false;
			this.#host.changed(events);
			return events.filter((e) => e.kind === 'message').length;
		} catch (error) {
			console.warn('cannot load older messages', error);
			this.#setLoading(false);
			return 0;
		}
	}

	#setLoading(loading: boolean): void {
		this.loadingOlder = loading;
		this.#host.changed([]);
	}
}

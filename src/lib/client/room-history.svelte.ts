import type { RoomEvent } from '../protocol/events.ts';
import { limits } from '../protocol/limits.ts';
import { rowToEvent } from '../protocol/rows.ts';
import { roomsApi } from './api.ts';
import type { MetaStore } from './store.ts';

export interface HistoryHost {
	readonly roomId: string;
	readonly meta: MetaStore;
	/** The live document holds this event. */
	known(clientMsgId: string): boolean;
	/** Events came in from the server: show them. */
	changed(): void;
}

/**
 * A room's history beyond its live document: events the server trimmed from the document, and older pages
 * brought in from the server's mirror, all kept on the device so the room shows them offline too.
 */
export class RoomHistory {
	/** Events no longer in the live document (trimmed by the server) or paged in from its history. */
	readonly events = new Map<string, RoomEvent>();
	/** The server may hold messages older than what this device shows. */
	hasOlder = $state(true);
	loadingOlder = $state(false);
	/** Where the next page ends (`before`); undefined: not asked yet, null: nothing older. */
	#cursor: number | null | undefined = undefined;
	readonly #host: HistoryHost;

	constructor(host: HistoryHost) {
		this.#host = host;
	}

	/** What the device kept from earlier sessions (events already known stay as they are). */
	restore(events: RoomEvent[]): void {
		for (const e of events) if (!this.events.has(e.clientMsgId)) this.events.set(e.clientMsgId, e);
	}

	/** Keeps events that left the live document, here and on the device. */
	keep(events: RoomEvent[]): void {
		for (const e of events) this.events.set(e.clientMsgId, e);
		if (events.length === 0) return;
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
		this.loadingOlder = true;
		const { roomId, known } = this.#host;
		try {
			const page = await roomsApi.messages(roomId, this.#cursor ?? undefined, limits.historyPageSize);
			const events = page.items.flatMap((row) => {
				const event = rowToEvent(row);
				return event && !known(event.clientMsgId) && !this.events.has(event.clientMsgId) ? [event] : [];
			});
			this.#cursor = page.nextBefore;
			if (page.nextBefore === null) this.hasOlder = false;
			this.keep(events);
			this.#host.changed();
			return events.filter((e) => e.kind === 'message').length;
		} catch (error) {
			console.warn('cannot load older messages', error);
			return 0;
		} finally {
			this.loadingOlder = false;
		}
	}
}

import * as Y from 'yjs';
import { messagesMapName, roomEvent, type RoomEvent } from '../protocol/events.ts';
import type { DocumentStore, Link, LinkEvents, StoredDocument, Transport } from './ports.ts';

/** Origin of this client's own writes (STYLE 10: every transaction is tagged). */
export const LOCAL_ORIGIN = Symbol('chat-local');

/** What one pass of the map observer found. */
export interface CopyChange {
	/** Valid events that came in or changed. */
	set: RoomEvent[];
	/** Keys whose value became invalid (a damaged database, a bug): no longer shown. */
	invalid: string[];
	/** Own events the server sent: what it sends is durable (it appends before it relays). */
	ackedNow: string[];
	/** Events the server deleted (it trims the room's window): they become history, still shown. */
	archived: RoomEvent[];
}

/** What a copy tells its room. Events of a link that was replaced never arrive here. */
export interface CopyEvents extends Omit<LinkEvents, 'synced' | 'authenticated'> {
	localReady(): void;
	synced(link: Link): void;
	authenticated(readOnly: boolean, link: Link): void;
	changed(change: CopyChange): void;
}

export interface CopyOptions {
	roomId: string;
	userId: string;
	transport: Transport;
	store: DocumentStore;
	/** Sync with the server; a room the user was removed from is only read from the device. */
	live: boolean;
	isAcked(clientMsgId: string): boolean;
	events: CopyEvents;
	/** Reading the document (and syncing it) starts once this resolves; without it, at once. */
	after?: Promise<void>;
}

/**
 * One Yjs document of a room as this device holds it: stored on the device and synced through a link. It validates
 * what arrives (`valid`) and reports to its room, which never touches the document, the store or the link
 * otherwise. A rebuild replaces the whole copy.
 */
export class RoomCopy {
	readonly doc = new Y.Doc();
	readonly map: Y.Map<unknown> = this.doc.getMap(messagesMapName);
	/** Validated events (every kind) by key, so an observer pass only validates what changed. */
	readonly valid = new Map<string, RoomEvent>();

	readonly #options: CopyOptions;
	#stored: StoredDocument | undefined;
	#link: Link | undefined;
	#live: boolean;
	#closed = false;
	/** Waiting for the next sync of whichever link is current. */
	#syncWaiters: (() => void)[] = [];

	constructor(options: CopyOptions) {
		this.#options = options;
		this.#live = options.live;
		this.map.observe(this.#onChange);
		if (options.after) void options.after.then(() => this.#start());
		else this.#start();
	}

	/** Reads the document from the device and starts syncing it. */
	#start(): void {
		if (this.#closed) return;
		const { store, roomId, events } = this.#options;
		this.#stored = store.open(roomId, this.doc);
		if (this.#live) this.#link = this.#openLink();
		void this.#stored.loaded.then(() => {
			if (!this.#closed) events.localReady();
		});
	}

	/** The current link; undefined once closed or no longer syncing. */
	get link(): Link | undefined {
		return this.#closed ? undefined : this.#link;
	}

	/** Writes own events: new keys, in one transaction. */
	write(...events: RoomEvent[]): void {
		this.doc.transact(() => {
			for (const event of events) this.map.set(event.clientMsgId, event);
		}, LOCAL_ORIGIN);
	}

	/** Replaces the link (a new session on the socket: a new handshake) after `delayMs`. */
	reopenSoon(delayMs: number): void {
		const link = this.#link;
		setTimeout(() => {
			if (this.#closed || !link || link !== this.#link) return;
			link.destroy();
			this.#link = this.#openLink();
		}, delayMs);
	}

	/** Resolves when the current link (or one that replaces it) has synced, or the copy stops syncing. */
	untilSynced(): Promise<void> {
		if (!this.link || this.link.isSynced) return Promise.resolve();
		return new Promise((resolve) => this.#syncWaiters.push(resolve));
	}

	/** Stops syncing for good; the copy stays readable. */
	stopSyncing(): void {
		this.#live = false;
		this.#link?.destroy();
		this.#link = undefined;
		this.#wake();
	}

	/** Stops syncing and stops storing (what is stored stays). The document stays usable. */
	close(): Promise<void> {
		if (this.#closed) return Promise.resolve();
		this.#closed = true;
		this.map.unobserve(this.#onChange);
		this.stopSyncing();
		return this.#stored?.close() ?? Promise.resolve();
	}

	/** Closes the copy and deletes it from the device (a refused copy would re-send its update on every start). */
	async discard(): Promise<void> {
		await this.close();
		try {
			await this.#options.store.clear(this.#options.roomId);
		} catch (error) {
			console.warn('cannot delete the refused local copy', error);
		}
		this.doc.destroy();
	}

	#wake(): void {
		const waiters = this.#syncWaiters;
		this.#syncWaiters = [];
		for (const resolve of waiters) resolve();
	}

	#openLink(): Link {
		const { roomId, transport, events } = this.#options;
		// What a transport reports while `open` runs (a provider attaching to a connected socket) is about a link
		// that is not current yet, and ignored, as is everything a replaced link reports.
		// eslint-disable-next-line prefer-const -- read by the handlers, which may run before it is assigned
		let link: Link | undefined;
		const current = () => !this.#closed && link !== undefined && link === this.#link;
		link = transport.open(roomId, this.doc, {
			synced: () => {
				if (!current()) return;
				events.synced(link as Link);
				this.#wake();
			},
			offline: () => current() && events.offline(),
			closed: (reason) => current() && events.closed(reason),
			authenticated: (readOnly) => current() && events.authenticated(readOnly, link as Link),
			loginRefused: (reason) => current() && events.loginRefused(reason),
			stateless: (payload) => current() && events.stateless(payload),
			awareness: () => current() && events.awareness(),
		});
		return link;
	}

	/** Map observer: validates the changed keys. */
	#onChange = (event: Y.YMapEvent<unknown>, transaction: Y.Transaction): void => {
		const fromServer = this.#link !== undefined && transaction.origin === this.#link.origin;
		const change: CopyChange = { set: [], invalid: [], ackedNow: [], archived: [] };
		for (const key of event.keysChanged) {
			const value = this.map.get(key);
			if (value === undefined) {
				// Only the server deletes (it trims the room's window).
				const old = this.valid.get(key);
				if (old) {
					change.archived.push(old);
					this.valid.delete(key);
				}
				continue;
			}
			const parsed = roomEvent.safeParse(value);
			if (!parsed.success || parsed.data.clientMsgId !== key) {
				// An invalid row (a damaged database, a bug): skipped, never shown, never re-written.
				console.warn(`skipping invalid event ${key}`, parsed.error?.issues);
				if (this.valid.delete(key)) change.invalid.push(key);
				continue;
			}
			this.valid.set(key, parsed.data);
			change.set.push(parsed.data);
			if (fromServer && parsed.data.senderId === this.#options.userId && !this.#options.isAcked(key))
				change.ackedNow.push(key);
		}
		this.#options.events.changed(change);
	};
}

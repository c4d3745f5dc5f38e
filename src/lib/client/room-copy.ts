import { HocuspocusProvider } from '@hocuspocus/provider';
import { IndexeddbPersistence, clearDocument } from 'y-indexeddb';
import * as Y from 'yjs';
import { colorFor } from '../protocol/awareness.ts';
import { messagesMapName, roomEvent, type RoomEvent } from '../protocol/events.ts';
import { roomDocumentName } from '../protocol/ids.ts';
import { connection } from './connection.svelte.ts';
import type { Profile } from './schemas.ts';
import { session } from './session.svelte.ts';
import { roomDatabaseName } from './store.ts';

/** Origin of this client's own writes (STYLE 10: every transaction is tagged). */
const LOCAL_ORIGIN = Symbol('chat-local');

/** What one pass of the map observer found. */
export interface CopyChange {
	/** Own events the server sent: what it sends is durable (it appends before it relays). */
	ackedNow: string[];
	/** Events the server deleted (it trims the room's window): they become history, still shown. */
	archived: RoomEvent[];
	/** The set of valid events changed. */
	changed: boolean;
}

/** What a copy tells its room. Events of a provider that was replaced never arrive here. */
export interface CopyEvents {
	localReady(): void;
	synced(provider: HocuspocusProvider): void;
	/** The socket is not connected (the copy keeps its data and reconnects by itself). */
	offline(): void;
	closed(reason: string): void;
	authenticated(readOnly: boolean, provider: HocuspocusProvider): void;
	loginRefused(reason: string): void;
	stateless(payload: string): void;
	awareness(): void;
	changed(change: CopyChange): void;
}

export interface CopyOptions {
	roomId: string;
	user: Profile;
	/** Sync with the server; a room the user was removed from is only read from the device. */
	live: boolean;
	isAcked(clientMsgId: string): boolean;
	events: CopyEvents;
	/**
	 * Reading the document (and syncing it) starts once this resolves: reading a long room takes the main thread
	 * for a while, and what the room showed last is painted first. Without it, at once.
	 */
	after?: Promise<void>;
}

/**
 * One Yjs document of a room as this device holds it: persisted by y-indexeddb and synced by a Hocuspocus
 * provider on the shared socket. It validates what arrives (`valid`) and reports to its `RoomStore`, which never
 * touches the document, the database or the provider otherwise. A rebuild replaces the whole copy.
 */
export class RoomCopy {
	readonly doc = new Y.Doc();
	readonly map: Y.Map<unknown> = this.doc.getMap(messagesMapName);
	/** Validated events (every kind) by key, so an observer pass only validates what changed. */
	readonly valid = new Map<string, RoomEvent>();

	readonly #options: CopyOptions;
	#persistence: IndexeddbPersistence | undefined;
	#provider: HocuspocusProvider | undefined;
	#live: boolean;
	#closed = false;

	constructor(options: CopyOptions) {
		this.#options = options;
		this.#live = options.live;
		this.map.observe(this.#onChange);
		if (options.after) void options.after.then(() => this.#start());
		else this.#start();
	}

	/** Reads the document from IndexedDB and starts syncing it. */
	#start(): void {
		if (this.#closed) return;
		const { user, roomId, events } = this.#options;
		this.#persistence = new IndexeddbPersistence(roomDatabaseName(user.id, roomId), this.doc);
		if (this.#live) this.#provider = this.#createProvider();
		void this.#persistence.whenSynced.then(() => {
			if (!this.#closed) events.localReady();
		});
	}

	/** The current provider; undefined once closed or no longer syncing. */
	get provider(): HocuspocusProvider | undefined {
		return this.#closed ? undefined : this.#provider;
	}

	/** Writes one own event: one new key in one transaction. */
	write(event: RoomEvent): void {
		this.doc.transact(() => this.map.set(event.clientMsgId, event), LOCAL_ORIGIN);
	}

	/** Replaces the provider (a new session on the socket: a new handshake) after `delayMs`. */
	reopenSoon(delayMs: number): void {
		const provider = this.#provider;
		setTimeout(() => {
			if (this.#closed || !provider || provider !== this.#provider) return;
			provider.destroy();
			this.#provider = this.#createProvider();
		}, delayMs);
	}

	/** Stops syncing for good; the copy stays readable. */
	stopSyncing(): void {
		this.#live = false;
		this.#provider?.destroy();
		this.#provider = undefined;
	}

	/** Stops syncing and closes the local database (its data stays on the device). The document stays usable. */
	close(): Promise<void> {
		if (this.#closed) return Promise.resolve();
		this.#closed = true;
		this.map.unobserve(this.#onChange);
		this.stopSyncing();
		return this.#persistence?.destroy() ?? Promise.resolve();
	}

	/** Closes the copy and deletes it from the device (a refused copy would re-send its update on every start). */
	async discard(): Promise<void> {
		await this.close();
		try {
			await clearDocument(roomDatabaseName(this.#options.user.id, this.#options.roomId));
		} catch (error) {
			console.warn('cannot delete the refused local copy', error);
		}
		this.doc.destroy();
	}

	#createProvider(): HocuspocusProvider {
		const { roomId, user, events } = this.#options;
		const provider = new HocuspocusProvider({
			websocketProvider: connection.socket,
			name: roomDocumentName(roomId),
			document: this.doc,
			// Each provider instance gets its own session on the socket, so the server's late answers to a provider
			// that was replaced (a refusal in flight, the close of the old session) never reach its successor.
			sessionAwareness: true,
			token: () => session.accessToken(),
		});
		const current = () => !this.#closed && provider === this.#provider;
		provider.on('synced', () => {
			if (current()) events.synced(provider);
		});
		provider.on('status', ({ status }: { status: string }) => {
			if (current() && status !== 'connected') events.offline();
		});
		provider.on('close', ({ event }: { event: { code: number; reason: string } }) => {
			if (current()) events.closed(event.reason ?? '');
		});
		provider.on('authenticated', ({ scope }: { scope: string }) => {
			if (current()) events.authenticated(scope === 'readonly', provider);
		});
		provider.on('authenticationFailed', ({ reason }: { reason: string }) => {
			if (current()) events.loginRefused(reason);
		});
		provider.on('stateless', ({ payload }: { payload: string }) => {
			if (current()) events.stateless(payload);
		});
		provider.on('awarenessChange', () => {
			if (current()) events.awareness();
		});
		provider.setAwarenessField('user', { id: user.id, name: user.name, color: colorFor(user.id) });
		provider.setAwarenessField('typing', false);
		provider.attach();
		return provider;
	}

	/** Map observer: validates the changed keys. */
	#onChange = (event: Y.YMapEvent<unknown>, transaction: Y.Transaction): void => {
		const fromServer = transaction.origin === this.#provider;
		const change: CopyChange = { ackedNow: [], archived: [], changed: false };
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
				if (this.valid.delete(key)) change.changed = true;
				continue;
			}
			this.valid.set(key, parsed.data);
			change.changed = true;
			if (fromServer && parsed.data.senderId === this.#options.user.id && !this.#options.isAcked(key))
				change.ackedNow.push(key);
		}
		this.#options.events.changed(change);
	};
}

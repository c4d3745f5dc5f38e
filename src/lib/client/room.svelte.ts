import { HocuspocusProvider } from '@hocuspocus/provider';
import { IndexeddbPersistence, clearDocument } from 'y-indexeddb';
import * as Y from 'yjs';
import { SvelteMap } from 'svelte/reactivity';
import { colorFor } from '../protocol/awareness.ts';
import {
	compareEvents,
	compareOrder,
	foldEvents,
	messagesMapName,
	roomEvent,
	type RoomEvent,
} from '../protocol/events.ts';
import { roomDocumentName } from '../protocol/ids.ts';
import { limits } from '../protocol/limits.ts';
import {
	dispatchStateless,
	serverStateless,
	type ServerStateless,
	type StatelessHandlers,
} from '../protocol/stateless.ts';
import * as clock from './clock.ts';
import { connection } from './connection.svelte.ts';
import type { Profile } from './schemas.ts';
import {
	filtered,
	jitter,
	normaliseContent,
	LOGIN_RETRY_MAX_MS,
	RETRY_MIN_MS,
	type ChatMessage,
	toChatMessage,
	withStatuses,
	type RoomNotice,
	type RoomPhase,
	type RoomStoreOptions,
} from './room-model.ts';
import { serverConfig } from './server-config.svelte.ts';
import { session } from './session.svelte.ts';
import { AckTracker } from './room-acks.svelte.ts';
import { RoomHistory } from './room-history.svelte.ts';
import { PresenceTracker } from './room-presence.svelte.ts';
import { failureOf, oldestMessage, ownEntriesToCarry, untilSynced } from './room-rebuild.ts';
import { afterClose, afterLoginRefused, storageNotice, type RoomAction } from './room-refusals.ts';
import { ReadTracker } from './room-reads.svelte.ts';
import { roomDatabaseName, type FailedMessage, type MetaStore, type ReadState } from './store.ts';

/** Origin of this client's own writes (STYLE 10: every transaction is tagged). */
const LOCAL_ORIGIN = Symbol('chat-local');
/** More rebuilds than this within the window means the rebuild itself is refused: stop. */
const REBUILD_LIMIT = 2;
const REBUILD_WINDOW_MS = 60_000;

export {
	normaliseContent,
	QUICK_REACTIONS,
	type ChatMessage,
	type MessageStatus,
	type RoomNotice,
	type RoomPhase,
	type RoomStoreOptions,
} from './room-model.ts';

/**
 * One room as this device holds it: the Yjs document (persisted by y-indexeddb, synced by a Hocuspocus
 * provider on the shared socket), the messages derived from it, the state of each own message, presence and
 * typing. Components read its fields and call its verbs; they never see the document, IndexedDB or the socket.
 *
 * Own messages go `pending` (written locally) → `synced` (acknowledged by the server as durable, or received from
 * it) → or `failed` (refused for good). Acknowledged ids are persisted, so a reload shows the same states.
 *
 * When the server refuses an update of this document, the refused items stay in the local document and would be
 * re-sent forever, and everything written after them depends on them. So the room is rebuilt: a fresh document
 * (new Yjs client id) synced from the server, into which the own valid messages the server lacks are written again.
 */
export class RoomStore {
	readonly roomId: string;
	readonly user: Profile;

	phase = $state<RoomPhase>('loading');
	/** The local copy has been read from IndexedDB (history is showable, even offline). */
	localReady = $state(false);
	/** The document is connected and holds the server's copy. */
	synced = $state(false);
	readOnly = $state(false);
	notice = $state<RoomNotice | null>(null);
	/** Read state, acknowledgements and failures have been read from the device. */
	metaReady = $state(false);

	#events = $state.raw<ChatMessage[]>([]);
	/** During a rebuild: the old copy's messages, shown until the fresh copy has them again. */
	#carried: ChatMessage[] = [];
	/** The notice clears itself on the next sync (a retryable condition), or stays until dismissed. */
	#noticeTransient = false;
	readonly #acks: AckTracker;
	readonly #readsOf: ReadTracker;
	readonly #presence: PresenceTracker;
	readonly #failed = new SvelteMap<string, FailedMessage>();
	readonly #history: RoomHistory;

	readonly #meta: MetaStore;
	#doc!: Y.Doc;
	#map!: Y.Map<unknown>;
	#persistence!: IndexeddbPersistence;
	#provider!: HocuspocusProvider;
	/** Validated events (every kind) by key, so an observer pass only validates what changed. */
	#valid = new Map<string, RoomEvent>();
	#rebuilds: number[] = [];
	#rebuilding: Promise<void> | null = null;
	/** Messages sent while a rebuild has no document to write into; null when not rebuilding. */
	#lateSends: RoomEvent[] | null = null;
	#untrack: () => void;
	#destroyed = false;
	#authRetryAt = 0;
	/** The next wait before a room login refused for a passing reason (storage, rate) is tried again. */
	#authBackoffMs = RETRY_MIN_MS;
	readonly #onRemoved: (() => void) | undefined;

	/** Messages in display order, each with its state. */
	readonly messages: ChatMessage[] = $derived.by(() =>
		withStatuses(this.#events, this.#acks.acked, this.#failed, this.user.id),
	);

	/** The user may delete other people's messages (a room owner or admin); the page sets it from the room. */
	canModerate = $state(false);

	/** Own changes of any kind (messages, edits, deletes, reactions) not acknowledged yet. */
	readonly pendingCount: number = $derived.by(() => {
		void this.#events;
		return this.#acks.unacked().length;
	});

	readonly lastMessage: ChatMessage | null = $derived(this.messages.at(-1) ?? null);

	/** Messages of others after this user's read position. */
	get unreadCount(): number {
		return this.#readsOf.unreadCount;
	}

	/** How far this user has read, on this device. */
	get readState(): ReadState | null {
		return this.#readsOf.readState;
	}

	/** User ids with the room open right now (any of their devices), this user included. */
	get onlineUserIds(): Set<string> {
		return this.#presence.onlineUserIds;
	}

	/** Others typing now, by name. */
	get typingNames(): string[] {
		return this.#presence.typingNames;
	}

	constructor(roomId: string, user: Profile, meta: MetaStore, options: RoomStoreOptions = {}) {
		this.roomId = roomId;
		this.user = user;
		this.#meta = meta;
		this.#onRemoved = options.onRemoved;
		const shared = { roomId, userId: user.id, meta };
		this.#readsOf = new ReadTracker({
			...shared,
			events: () => this.#events,
			syncedProvider: () => (!this.#destroyed && this.#provider?.isSynced ? this.#provider : undefined),
		});
		this.#history = new RoomHistory(roomId, meta);
		this.#presence = new PresenceTracker(user.id, () => (this.#destroyed ? undefined : this.#provider));
		this.#acks = new AckTracker({
			...shared,
			events: () => this.#valid.values(),
			isFailed: (id) => this.#failed.has(id),
			currentProvider: () => (this.#destroyed ? undefined : this.#provider),
		});
		if (options.removedNotice) {
			this.phase = 'removed';
			this.#setNotice({ kind: 'error', text: options.removedNotice }, false);
			// Nothing to sync: the connection banner must not wait for this room.
			this.#untrack = () => undefined;
		} else {
			this.#untrack = connection.track(this);
		}
		void this.#open(new Y.Doc());
		void this.#loadMeta();
	}

	/**
	 * Writes a message: validated first with the shared schema (never write what the server would refuse), then
	 * one new key in one transaction. Returns the message id, or throws with a reason for the user.
	 */
	send(text: string, replyToId?: string): string {
		return this.#write({
			kind: 'message',
			content: normaliseContent(text),
			...(replyToId ? { replyToId } : {}),
		});
	}

	/** Replaces the text of an own message (an `edit` event; the original stays in the history). */
	edit(targetId: string, text: string): string {
		const target = this.find(targetId);
		if (!target?.own || target.deleted) throw new Error('You can only edit your own messages.');
		const content = normaliseContent(text);
		if (content === target.content) return targetId;
		return this.#write({ kind: 'edit', targetId, content });
	}

	/** Deletes a message: an own one, or anyone's for a room owner or admin. */
	remove(targetId: string): string {
		const target = this.find(targetId);
		if (!target || target.deleted) throw new Error('This message cannot be deleted.');
		if (!target.own && !this.canModerate)
			throw new Error('Only room owners and admins can delete messages of others.');
		return this.#write({ kind: 'delete', targetId });
	}

	/** Adds this user's `emoji` to a message, or takes it back if it is there. */
	toggleReaction(targetId: string, emoji: string): string {
		const target = this.find(targetId);
		if (!target || target.deleted) throw new Error('This message cannot get reactions.');
		const mine = target.reactions.find((r) => r.emoji === emoji)?.userIds.includes(this.user.id);
		return this.#write({ kind: mine ? 'unreaction' : 'reaction', targetId, emoji });
	}

	/**
	 * Writes an event: validated first with the shared schema (never write what the server would refuse), then
	 * one new key in one transaction. Returns its id, or throws with a reason for the user.
	 */
	#write(fields: Record<string, unknown> & { kind: RoomEvent['kind'] }): string {
		if (this.readOnly) throw new Error('You can only read this room.');
		if (this.phase !== 'ready' && this.phase !== 'loading') throw new Error('This room is not available.');
		if (typeof fields.content === 'string') fields = { ...fields, content: filtered(fields.content) };
		const parsed = roomEvent.safeParse({
			...fields,
			clientMsgId: crypto.randomUUID(),
			senderId: this.user.id,
			createdAt: new Date(clock.serverNow()).toISOString(),
		});
		if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? 'This cannot be sent.');
		const event = parsed.data;
		// While a rebuild tears the refused copy down, there is no document to write into: the event waits
		// and goes into the fresh copy with the carried-over ones.
		if (this.#lateSends) this.#lateSends.push(event);
		else this.#doc.transact(() => this.#map.set(event.clientMsgId, event), LOCAL_ORIGIN);
		if (event.kind === 'message') this.setTyping(false);
		return event.clientMsgId;
	}

	/** Announces typing; it turns itself off after a few idle seconds. */
	setTyping(typing: boolean): void {
		this.#presence.setTyping(typing);
	}

	/** Marks everything up to the newest message as read. */
	markRead(): void {
		this.#readsOf.markRead();
	}

	/** The other members who have read `message` (their read position is at it or later). */
	seenBy(message: { at: number; clientMsgId: string }): string[] {
		return this.#readsOf.seenBy(message);
	}

	/** The first message from someone else after what was last read: where the "new messages" marker goes. */
	firstUnreadId(): string | null {
		return this.#readsOf.firstUnreadId();
	}

	/** The message a reply points to, if this device has it. */
	find(clientMsgId: string): ChatMessage | undefined {
		return this.messages.find((m) => m.clientMsgId === clientMsgId);
	}

	dismissNotice(): void {
		this.notice = null;
	}

	/** Closes the provider and the local database (the data stays on the device). */
	destroy(): void {
		void this.close();
	}

	/** `destroy`, resolved once the local database is closed (before it is deleted). */
	async close(): Promise<void> {
		if (this.#destroyed) return;
		this.#destroyed = true;
		this.#presence.close();
		this.#readsOf.close();
		this.#acks.close();
		this.#untrack();
		await this.#teardown();
	}

	/**
	 * The user is no longer in this room (removed, left, or the room is gone): it stays readable with `text` as
	 * its notice, nothing can be written, and it stops syncing.
	 */
	markRemoved(text: string): void {
		this.phase = 'removed';
		this.synced = false;
		this.#setNotice({ kind: 'error', text }, false);
		this.setTyping(false);
		this.#provider?.destroy();
		this.#untrack();
	}

	/** For end-to-end tests only: the live document, to inject an update the server refuses. */
	get debugDoc(): Y.Doc {
		return this.#doc;
	}

	get debugProvider(): HocuspocusProvider {
		return this.#provider;
	}

	async #loadMeta(): Promise<void> {
		try {
			const [read, acked, failed, history] = await Promise.all([
				this.#meta.readState(this.roomId),
				this.#meta.ackedIds(this.roomId),
				this.#meta.failed(this.roomId),
				this.#meta.history(this.roomId),
			]);
			this.#history.restore(history);
			if (history.length > 0) this.#publish();
			this.#readsOf.readState = read;
			for (const id of acked) this.#acks.acked.add(id);
			for (const f of failed) this.#failed.set(f.clientMsgId, f);
		} catch (error) {
			console.warn('cannot read room metadata', error);
		}
		this.metaReady = true;
	}

	/** Opens `doc`: local persistence first, then the provider on the shared socket. */
	async #open(doc: Y.Doc): Promise<void> {
		this.#doc = doc;
		this.#map = doc.getMap(messagesMapName);
		this.#valid = new Map();
		this.#map.observe(this.#onChange);
		this.#persistence = new IndexeddbPersistence(roomDatabaseName(this.user.id, this.roomId), doc);
		if (this.phase !== 'removed') this.#provider = this.#createProvider(doc);
		await this.#persistence.whenSynced;
		if (this.#destroyed || this.#doc !== doc) return;
		this.localReady = true;
		if (this.phase === 'loading') this.phase = 'ready';
	}

	#createProvider(doc: Y.Doc): HocuspocusProvider {
		const provider = new HocuspocusProvider({
			websocketProvider: connection.socket,
			name: roomDocumentName(this.roomId),
			document: doc,
			// Each provider instance gets its own session on the socket, so the server's late answers to a provider
			// that was replaced (a refusal in flight, the close of the old session) never reach its successor.
			sessionAwareness: true,
			token: () => session.accessToken(),
		});
		provider.on('synced', () => {
			if (provider !== this.#provider) return;
			this.synced = true;
			if (this.#noticeTransient) this.notice = null;
			this.#acks.ask(provider);
			this.#readsOf.send();
		});
		provider.on('status', ({ status }: { status: string }) => {
			if (provider === this.#provider && status !== 'connected') this.synced = false;
		});
		provider.on('close', ({ event }: { event: { code: number; reason: string } }) => {
			if (provider === this.#provider) this.#act(afterClose(event.reason ?? ''), event.reason ?? '');
		});
		provider.on('authenticated', ({ scope }: { scope: string }) => {
			if (provider !== this.#provider) return;
			this.readOnly = scope === 'readonly';
			this.#authBackoffMs = RETRY_MIN_MS;
			// Every (re)connection: ask about what was never acknowledged, whether or not `synced` follows.
			this.#acks.keepAsking(provider, true);
		});
		provider.on('authenticationFailed', ({ reason }: { reason: string }) => {
			if (provider === this.#provider) this.#act(afterLoginRefused(reason), reason);
		});
		provider.on('stateless', ({ payload }: { payload: string }) => {
			if (provider === this.#provider) this.#onStateless(payload);
		});
		provider.on('awarenessChange', () => {
			if (provider === this.#provider) this.#presence.readPeers();
		});
		provider.setAwarenessField('user', {
			id: this.user.id,
			name: this.user.name,
			color: colorFor(this.user.id),
		});
		provider.setAwarenessField('typing', false);
		provider.attach();
		return provider;
	}

	/** Map observer: validates the changed keys and keeps the ordered list. */
	#onChange = (event: Y.YMapEvent<unknown>, transaction: Y.Transaction): void => {
		const fromServer = transaction.origin === this.#provider;
		const ackedNow: string[] = [];
		const archived: RoomEvent[] = [];
		let changed = false;
		for (const key of event.keysChanged) {
			const value = this.#map.get(key);
			if (value === undefined) {
				// Only the server deletes (it trims the room's window): the event becomes history, still shown.
				const old = this.#valid.get(key);
				if (old) {
					archived.push(old);
					this.#valid.delete(key);
				}
				continue;
			}
			const parsed = roomEvent.safeParse(value);
			if (!parsed.success || parsed.data.clientMsgId !== key) {
				// An invalid row (a damaged database, a bug): skipped, never shown, never re-written.
				console.warn(`skipping invalid event ${key}`, parsed.error?.issues);
				if (this.#valid.delete(key)) changed = true;
				continue;
			}
			this.#valid.set(key, parsed.data);
			changed = true;
			// What the server sends is durable: it appends before it relays.
			if (fromServer && parsed.data.senderId === this.user.id && !this.#acks.acked.has(key))
				ackedNow.push(key);
		}
		if (ackedNow.length > 0) this.#acks.ack(ackedNow);
		this.#history.keep(archived);
		if (changed) this.#publish();
	};

	/**
	 * Brings in the next page of older history from the server (the Postgres mirror), caches it on the device
	 * and shows it. Returns how many messages it added; 0 when there is nothing older or the server is away.
	 */
	async loadOlder(): Promise<number> {
		const events = await this.#history.loadOlder((id) => this.#valid.has(id));
		if (!events) return 0;
		this.#publish();
		return events.filter((e) => e.kind === 'message').length;
	}

	/** The server may hold messages older than what this device shows. */
	get hasOlder(): boolean {
		return this.#history.hasOlder;
	}

	get loadingOlder(): boolean {
		return this.#history.loadingOlder;
	}

	#publish(): void {
		const all = new Map(this.#history.events);
		for (const [key, event] of this.#valid) all.set(key, event);
		const folded = foldEvents(all.values());
		const events = [...folded.values()].map((m) => toChatMessage(m, this.user.id));
		for (const m of this.#carried) if (!folded.has(m.clientMsgId)) events.push(m);
		this.#events = events.sort(compareOrder);
	}

	#setNotice(notice: RoomNotice, transient: boolean): void {
		this.notice = notice;
		this.#noticeTransient = transient;
	}

	/** What the server tells this room (stateless.ts); other types are for newer clients and ignored. */
	readonly #statelessHandlers: StatelessHandlers<ServerStateless> = {
		ack: (message) => this.#acks.ack(message.clientMsgIds),
		reads: (message) => this.#readsOf.received(message.reads),
	};

	#onStateless(payload: string): void {
		dispatchStateless(serverStateless, payload, this.#statelessHandlers, undefined);
	}

	/** Carries out what the server's close or login refusal asks for (room-refusals.ts decides). */
	#act(action: RoomAction, reason: string): void {
		this.synced = false;
		switch (action.kind) {
			case 'end-session':
				void session.end(action.ended);
				return;
			case 'removed':
				if (this.#onRemoved) this.#onRemoved();
				else this.markRemoved('You are no longer a member of this room');
				return;
			case 'rebuild':
				// During a rebuild the fresh copy has written nothing yet: this refusal cannot be its own.
				if (this.#rebuilding) this.#reopenSoon();
				else void this.#rebuild(reason);
				return;
			case 'reopen':
				this.#reopenSoon();
				return;
			case 'notice':
				this.#setNotice({ kind: 'warning', text: action.text }, true);
				return;
			case 'outdated':
				serverConfig.markOutdated(reason);
				this.#setNotice(
					{ kind: 'error', text: 'This version of Chat is too old for the server: reload.' },
					true,
				);
				return;
			case 'retry-login': {
				// Soon, then less and less often, with jitter so that a node's clients do not all come back at once.
				this.#setNotice({ kind: 'warning', text: storageNotice }, true);
				const wait = jitter(this.#authBackoffMs);
				this.#authBackoffMs = Math.min(this.#authBackoffMs * 2, LOGIN_RETRY_MAX_MS);
				this.#reopenSoon(wait);
				return;
			}
			case 'retry-once':
				// The token function refreshes on the next attempt. Re-attach, but not in a loop.
				if (Date.now() < this.#authRetryAt) {
					this.#setNotice({ kind: 'warning', text: 'Cannot open this room right now; retrying…' }, true);
					return;
				}
				this.#authRetryAt = Date.now() + 10_000;
				this.#reopenSoon();
				return;
			case 'none':
		}
	}

	/** Replaces the provider of the same document (a new session on the socket: a new handshake). */
	#reopenSoon(delayMs = 500): void {
		const provider = this.#provider;
		setTimeout(() => {
			if (this.#destroyed || provider !== this.#provider || this.phase === 'removed') return;
			provider.destroy();
			this.#provider = this.#createProvider(this.#doc);
		}, delayMs);
	}

	#teardown(): Promise<void> {
		this.#map?.unobserve(this.#onChange);
		this.#provider?.destroy();
		return this.#persistence?.destroy() ?? Promise.resolve();
	}

	/**
	 * Rebuilds the local document after the server refused an update of it (see the class comment). Own valid
	 * messages the server's copy lacks are carried over with their ids; invalid ones are kept as failed.
	 */
	#rebuild(reason: string): Promise<void> {
		this.#rebuilding ??= this.#doRebuild(reason).finally(() => {
			this.#rebuilding = null;
		});
		return this.#rebuilding;
	}

	async #doRebuild(reason: string): Promise<void> {
		const now = Date.now();
		this.#rebuilds = this.#rebuilds.filter((t) => now - t < REBUILD_WINDOW_MS);
		this.#rebuilds.push(now);
		const looping = this.#rebuilds.length > REBUILD_LIMIT;
		console.warn(`room ${this.roomId}: update refused (${reason}); rebuilding the local copy`);
		this.#lateSends = [];

		const horizon = clock.serverNow() + limits.maxClockSkewMs;
		const { carry, failed } = ownEntriesToCarry(
			this.#map.entries(),
			{ roomId: this.roomId, userId: this.user.id },
			reason,
			horizon,
		);

		// Tear down the poisoned copy, on the device too: it would re-send the refused update on every start.
		const oldDoc = this.#doc;
		const failedIds = new Set(failed.map((f) => f.clientMsgId));
		this.#carried = this.#events.filter((m) => !failedIds.has(m.clientMsgId));
		await this.#teardown();
		this.synced = false;
		try {
			await clearDocument(roomDatabaseName(this.user.id, this.roomId));
		} catch (error) {
			console.warn('cannot delete the refused local copy', error);
		}
		oldDoc.destroy();
		if (this.#destroyed) {
			this.#lateSends = null;
			return;
		}

		if (looping) {
			for (const e of carry)
				if (e.kind === 'message')
					failed.push(failureOf(this.roomId, e.clientMsgId, e, 'refused repeatedly by the server'));
			carry.length = 0;
		}
		if (failed.length > 0) {
			for (const f of failed) this.#failed.set(f.clientMsgId, f);
			void this.#meta
				.addFailed(failed)
				.catch((error: unknown) => console.warn('cannot save failures', error));
		}

		const fresh = new Y.Doc();
		void this.#open(fresh);
		carry.push(...(this.#lateSends ?? []));
		this.#lateSends = null;
		this.#carried = this.#carried.filter((m) => !this.#failed.has(m.clientMsgId));
		this.#publish();
		// Writing a key the server's copy already holds would be refused as a duplicate: wait for that copy.
		await untilSynced(
			() => this.#provider,
			() => !this.#destroyed && this.#doc === fresh,
		);
		if (this.#destroyed || this.#doc !== fresh) return;

		this.#writeAgain(fresh, carry);
		this.#carried = [];
		this.#publish();
		this.#setNotice(
			looping
				? {
						kind: 'error',
						text: 'The server keeps refusing changes in this room. Your unsent messages are marked as failed.',
					}
				: {
						kind: 'warning',
						text: 'Some of your changes were refused by the server; the room was reloaded. Your valid messages were kept.',
					},
			false,
		);
	}

	/** Writes the carried events into the fresh copy, except what the server holds or trimmed into history. */
	#writeAgain(fresh: Y.Doc, carry: RoomEvent[]): void {
		// (Own messages the fresh copy received from the server were marked acknowledged by the observer.)
		// Older than the server's window: trimmed into history, where the acknowledged ones already are. Writing
		// them again would bring them back into the document as new entries.
		const oldest = oldestMessage(this.#map);
		const archived: RoomEvent[] = [];
		for (const event of carry) {
			// A key the server already holds must not be written again: that would be refused as a duplicate.
			if (this.#map.has(event.clientMsgId)) continue;
			if (oldest && this.#acks.acked.has(event.clientMsgId) && compareEvents(event, oldest) < 0) {
				archived.push(event);
				continue;
			}
			fresh.transact(() => this.#map.set(event.clientMsgId, event), LOCAL_ORIGIN);
		}
		this.#history.keep(archived);
	}
}

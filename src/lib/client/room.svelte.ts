import type { HocuspocusProvider } from '@hocuspocus/provider';
import type * as Y from 'yjs';
import { foldEvents, compareOrder, type RoomEvent } from '../protocol/events.ts';
import {
	dispatchStateless,
	serverStateless,
	type ServerStateless,
	type StatelessHandlers,
} from '../protocol/stateless.ts';
import { connection } from './connection.svelte.ts';
import { detached } from './detached.svelte.ts';
import type { Profile } from './schemas.ts';
import {
	newEvent,
	type NewEventFields,
	normaliseContent,
	type ChatMessage,
	toChatMessage,
	withStatuses,
	type RoomNotice,
	type RoomPhase,
	type RoomStoreOptions,
} from './room-model.ts';
import { AckTracker } from './room-acks.svelte.ts';
import { RoomCopy, type CopyChange, type CopyEvents } from './room-copy.ts';
import { RoomHistory } from './room-history.svelte.ts';
import { PresenceTracker } from './room-presence.svelte.ts';
import { RoomScreen } from './room-screen.svelte.ts';
import { Rebuilder, type RebuildHost } from './room-rebuild.ts';
import { afterClose, afterLoginRefused, Refusals, type RoomAction } from './room-refusals.ts';
import { ReadTracker } from './room-reads.svelte.ts';
import { type FailedMessage, type MetaStore } from './store.ts';

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
	/** The notice clears itself on the next sync (a retryable condition), or stays until dismissed. */
	#noticeTransient = false;
	readonly #acks: AckTracker;
	readonly #readsOf: ReadTracker;
	readonly #presence: PresenceTracker;
	readonly #history: RoomHistory;
	readonly #screen: RoomScreen;

	readonly #meta: MetaStore;
	#copy: RoomCopy;
	readonly #rebuilder: Rebuilder;
	#untrack: () => void;
	#destroyed = false;
	#dispose = () => {};
	readonly #refusals: Refusals;

	/** Messages in display order, each with its state; what the room showed last, until its own are read. */
	readonly messages: ChatMessage[] = $derived.by(
		() => this.#screen.shown ?? withStatuses(this.#events, this.#acks.acked, this.#acks.failed, this.user.id),
	);

	/** The user may delete other people's messages (a room owner or admin); the page sets it from the room. */
	canModerate = $state(false);

	/** Own changes of any kind (messages, edits, deletes, reactions) not acknowledged yet. */
	readonly pendingCount: number = $derived.by(() => {
		void this.#events;
		return this.#acks.unacked().length;
	});

	readonly lastMessage: ChatMessage | null = $derived(this.messages.at(-1) ?? null);

	/**
	 * Read positions: the unread count, who has seen a message, where the "new messages" marker goes; the page
	 * calls `markRead` as the user reads.
	 */
	readonly reads: Pick<ReadTracker, 'unreadCount' | 'known' | 'markRead' | 'seenBy' | 'firstUnreadId'>;
	/** Messages older than the device holds, paged in from the server on request. */
	readonly history: Pick<RoomHistory, 'hasOlder' | 'loadingOlder' | 'loadOlder'>;
	/** Who has the room open and who is typing; the composer announces typing. */
	readonly presence: Pick<PresenceTracker, 'onlineUserIds' | 'typingNames' | 'setTyping'>;

	/** A store that outlives the component that opens it (see `detached`): open rooms with this, not `new`. */
	static open(roomId: string, user: Profile, meta: MetaStore, options: RoomStoreOptions = {}): RoomStore {
		const [store, dispose] = detached(() => new RoomStore(roomId, user, meta, options));
		store.#dispose = dispose;
		return store;
	}

	private constructor(roomId: string, user: Profile, meta: MetaStore, options: RoomStoreOptions = {}) {
		this.roomId = roomId;
		this.user = user;
		this.#meta = meta;
		this.#screen = new RoomScreen(roomId, meta);
		const shared = { roomId, userId: user.id, meta };
		this.#readsOf = new ReadTracker({
			...shared,
			events: () => this.#events,
			syncedProvider: () => (this.#provider?.isSynced ? this.#provider : undefined),
		});
		this.reads = this.#readsOf;
		this.#history = new RoomHistory({
			roomId,
			meta,
			known: (id) => this.#copy.valid.has(id),
			changed: () => this.#publish(),
		});
		this.history = this.#history;
		this.#presence = new PresenceTracker(user.id, () => this.#provider);
		this.presence = this.#presence;
		this.#acks = new AckTracker({
			...shared,
			events: () => this.#copy.valid.values(),
			currentProvider: () => this.#provider,
		});
		if (options.removedNotice) {
			this.phase = 'removed';
			this.#setNotice({ kind: 'error', text: options.removedNotice }, false);
			// Nothing to sync: the connection banner must not wait for this room.
			this.#untrack = () => undefined;
		} else {
			this.#untrack = connection.track(this);
		}
		this.#refusals = new Refusals({
			removed: options.onRemoved ?? (() => this.markRemoved('You are no longer a member of this room')),
			rebuild: (reason) => {
				// During a rebuild the fresh copy has written nothing yet: this refusal cannot be its own.
				if (this.#rebuilder.running) this.#reopenSoon();
				else void this.#rebuilder.start(reason);
			},
			reopenSoon: (delayMs) => this.#reopenSoon(delayMs),
			notice: (notice) => this.#setNotice(notice, true),
		});
		this.#rebuilder = new Rebuilder(this.#rebuildHost());
		this.#copy = this.#openCopy(this.#screen.painted);
		void this.#loadMeta();
	}

	/** Writes a message (see `#write`); returns its id. */
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

	/** Writes an event (`newEvent` makes it), one new key in one transaction. Returns its id, or throws. */
	#write(fields: NewEventFields): string {
		if (this.readOnly) throw new Error('You can only read this room.');
		if (this.phase !== 'ready' && this.phase !== 'loading') throw new Error('This room is not available.');
		const event = newEvent(fields, this.user.id);
		// While a rebuild tears the refused copy down, there is no document to write into: the event waits
		// and goes into the fresh copy with the carried-over ones.
		if (!this.#rebuilder.hold(event)) this.#copy.write(event);
		if (event.kind === 'message') this.#presence.setTyping(false);
		return event.clientMsgId;
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
		this.#dispose();
		this.#presence.close();
		this.#readsOf.close();
		this.#acks.close();
		this.#screen.close();
		this.#untrack();
		await this.#copy.close();
	}

	/**
	 * The user is no longer in this room (removed, left, or the room is gone): it stays readable with `text` as
	 * its notice, nothing can be written, and it stops syncing.
	 */
	markRemoved(text: string): void {
		this.phase = 'removed';
		this.synced = false;
		this.#setNotice({ kind: 'error', text }, false);
		this.#presence.setTyping(false);
		this.#copy.stopSyncing();
		this.#untrack();
	}

	/** For end-to-end tests only: the live document, to inject an update the server refuses. */
	get debugDoc(): Y.Doc {
		return this.#copy.doc;
	}

	get debugProvider(): HocuspocusProvider | undefined {
		return this.#provider;
	}

	/** The live copy's provider; undefined once the room is closed or no longer syncing. */
	get #provider(): HocuspocusProvider | undefined {
		return this.#destroyed ? undefined : this.#copy.provider;
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
			this.#readsOf.restore(read);
			this.#acks.restore(acked, failed);
		} catch (error) {
			console.warn('cannot read room metadata', error);
		}
		this.metaReady = true;
		this.#showWhenRead();
	}

	/** Opens a copy of the room's document: local persistence first, then the provider on the shared socket. */
	#openCopy(after?: Promise<void>): RoomCopy {
		return new RoomCopy({
			after,
			roomId: this.roomId,
			user: this.user,
			live: this.phase !== 'removed',
			isAcked: (id) => this.#acks.acked.has(id),
			events: this.#copyEvents,
		});
	}

	/**
	 * What a copy reports. A copy stops reporting once closed, and it is closed before it stops being the live one
	 * (a rebuild) or the room closes, so whatever arrives here is about the live copy.
	 */
	readonly #copyEvents: CopyEvents = {
		localReady: () => {
			this.localReady = true;
			if (this.phase === 'loading') this.phase = 'ready';
			this.#showWhenRead();
		},
		synced: (provider) => {
			this.synced = true;
			if (this.#noticeTransient) this.notice = null;
			this.#acks.ask(provider);
			this.#readsOf.send();
		},
		offline: () => {
			this.synced = false;
		},
		closed: (reason) => this.#act(afterClose(reason), reason),
		authenticated: (readOnly, provider) => {
			this.readOnly = readOnly;
			this.#refusals.loggedIn();
			// Every (re)connection: ask about what was never acknowledged, whether or not `synced` follows.
			this.#acks.keepAsking(provider, true);
		},
		loginRefused: (reason) => this.#act(afterLoginRefused(reason), reason),
		stateless: (payload) => dispatchStateless(serverStateless, payload, this.#statelessHandlers, undefined),
		awareness: () => this.#presence.readPeers(),
		changed: (change) => this.#applyChange(change),
	};

	#applyChange({ ackedNow, archived, changed }: CopyChange): void {
		if (ackedNow.length > 0) this.#acks.ack(ackedNow);
		this.#history.keep(archived);
		if (changed) this.#publish();
	}

	#publish(): void {
		const all = new Map(this.#history.events);
		for (const [key, event] of this.#copy.valid) all.set(key, event);
		const folded = foldEvents(all.values());
		const events = [...folded.values()].map((m) => toChatMessage(m, this.user.id));
		for (const m of this.#rebuilder.carried) if (!folded.has(m.clientMsgId)) events.push(m);
		this.#events = events.sort(compareOrder);
		if (this.localReady && this.metaReady) this.#screen.saveSoon(() => this.messages);
	}

	/** Once the document and the metadata are read, the room shows its own messages (and keeps them for next time). */
	#showWhenRead(): void {
		if (this.localReady && this.metaReady) this.#screen.replace(() => this.messages);
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

	/** Carries out what the server's close or login refusal asks for (room-refusals.ts decides). */
	#act(action: RoomAction, reason: string): void {
		this.synced = false;
		this.#refusals.act(action, reason);
	}

	/** Replaces the provider of the same document (a new session on the socket: a new handshake). */
	#reopenSoon(delayMs = 500): void {
		if (this.phase !== 'removed') this.#copy.reopenSoon(delayMs);
	}

	/** What a rebuild (room-rebuild.ts) reads and changes of this room. */
	#rebuildHost(): RebuildHost {
		return {
			roomId: this.roomId,
			userId: this.user.id,
			copy: () => this.#copy,
			replaceCopy: async () => {
				await this.#copy.discard();
				this.synced = false;
				if (this.#destroyed) return null;
				this.#copy = this.#openCopy();
				return this.#copy;
			},
			isCurrent: (copy: RoomCopy) => !this.#destroyed && this.#copy === copy,
			shown: () => this.#events,
			fail: (failed: FailedMessage[]) => this.#acks.fail(failed),
			isFailed: (id: string) => this.#acks.failed.has(id),
			isAcked: (id: string) => this.#acks.acked.has(id),
			keepHistory: (archived: RoomEvent[]) => this.#history.keep(archived),
			publish: () => this.#publish(),
			notify: (notice: RoomNotice) => this.#setNotice(notice, false),
		};
	}
}

import type { HocuspocusProvider } from '@hocuspocus/provider';
import type * as Y from 'yjs';
import { untrack } from 'svelte';
import { rowToEvent } from '../protocol/rows.ts';
import { HocuspocusLink, HocuspocusTransport } from '../sync/hocuspocus.ts';
import { IndexeddbStore } from '../sync/indexeddb.ts';
import type { HistorySource } from '../sync/ports.ts';
import { RoomSync } from '../sync/room-sync.ts';
import { roomsApi } from './api.ts';
import * as clock from './clock.ts';
import { connection } from './connection.svelte.ts';
import { detached } from './detached.svelte.ts';
import {
	newEvent,
	normaliseContent,
	type ChatMessage,
	type NewEventFields,
	type RoomNotice,
	type RoomPhase,
	type RoomStoreOptions,
} from './room-model.ts';
import { OutgoingStore } from './outgoing-files.ts';
import { PresenceTracker } from './room-presence.svelte.ts';
import { ReadTracker } from './room-reads.svelte.ts';
import { RoomScreen } from './room-screen.svelte.ts';
import { RoomUploads } from './room-uploads.svelte.ts';
import type { Profile } from './schemas.ts';
import { serverConfig } from './server-config.svelte.ts';
import { session } from './session.svelte.ts';
import { roomDatabaseName, type MetaStore } from './store.ts';

export {
	normaliseContent,
	QUICK_REACTIONS,
	type ChatAttachment,
	type ChatMessage,
	type MessageStatus,
	type RoomNotice,
	type RoomPhase,
	type RoomStoreOptions,
} from './room-model.ts';

/** Older messages, from the server's mirror. */
const historyFromServer: HistorySource = async (roomId, before, limit) => {
	const page = await roomsApi.messages(roomId, before, limit);
	return { events: page.items.flatMap((row) => rowToEvent(row) ?? []), nextBefore: page.nextBefore };
};

/** The paging state of a room's history, reactive. */
class HistoryState {
	/** The server may hold messages older than what this device shows. */
	hasOlder = $state(true);
	loadingOlder = $state(false);
	/** Brings in the next page; resolves with how many messages it added. */
	readonly loadOlder: () => Promise<number>;

	constructor(loadOlder: () => Promise<number>) {
		this.loadOlder = loadOlder;
	}
}

/**
 * One room as the components see it: a reactive facade over the framework-free sync core (`RoomSync`, in
 * src/lib/sync/, which holds the document, the acks, the history and the rebuild), plus what only a screen needs:
 * what the room showed last (painted before the document is read), read positions, presence and typing.
 * Components read its fields and call its verbs; they never see the document, IndexedDB or the socket.
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
	/** Own changes of any kind (messages, edits, deletes, reactions) not acknowledged yet. */
	pendingCount = $state(0);
	/** The user may delete other people's messages (a room owner or admin); the page sets it from the room. */
	canModerate = $state(false);

	#events = $state.raw<readonly ChatMessage[]>([]);
	readonly #history: HistoryState;
	#readsLoaded = false;
	readonly #core: RoomSync;
	readonly #readsOf: ReadTracker;
	readonly #presence: PresenceTracker;
	readonly #screen: RoomScreen;
	readonly #meta: MetaStore;
	readonly #uploads: RoomUploads;
	readonly #outgoing: OutgoingStore;
	#untrack: () => void;
	#stopUploads = () => {};
	readonly #onNewest: ((message: ChatMessage) => void) | undefined;
	#newest: ChatMessage | undefined;
	#dispose = () => {};

	/** The room's messages in display order: what the room showed last, until its own are read. */
	readonly #roomMessages: ChatMessage[] = $derived.by(
		() => this.#screen.shown ?? (this.#events as ChatMessage[]),
	);

	/** Messages in display order, each with its state, with the own ones still waiting for their files. */
	readonly messages: ChatMessage[] = $derived.by(() =>
		withWaiting(this.#roomMessages, this.#uploads.messages),
	);

	readonly lastMessage: ChatMessage | null = $derived(this.messages.at(-1) ?? null);

	/**
	 * Read positions: the unread count, who has seen a message, where the "new messages" marker goes; the page
	 * calls `markRead` as the user reads.
	 */
	readonly reads: Pick<
		ReadTracker,
		'unreadCount' | 'mentionCount' | 'covers' | 'known' | 'markRead' | 'seenBy' | 'firstUnreadId'
	>;
	/** Messages older than the device holds, paged in from the server on request. */
	readonly history: Readonly<HistoryState>;
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
		this.#onNewest = options.onNewest;
		this.#screen = new RoomScreen(roomId, meta);
		this.#core = new RoomSync({
			roomId,
			userId: user.id,
			transport: new HocuspocusTransport({
				socket: () => connection.socket,
				token: () => session.accessToken(),
				user,
				shown: () => untrack(() => options.shown?.() ?? true),
			}),
			store: new IndexeddbStore((id) => roomDatabaseName(user.id, id)),
			meta,
			history: historyFromServer,
			removedNotice: options.removedNotice,
			// The document is read once what the room showed last is painted.
			after: this.#screen.painted,
			now: clock.serverNow,
			endSession: (ended) => void session.end(ended),
			outdated: (reason) => serverConfig.markOutdated(reason),
			removed: options.onRemoved,
		});
		const core = this.#core;
		this.#readsOf = new ReadTracker({
			roomId,
			userId: user.id,
			userName: user.name,
			meta,
			events: () => this.#events as ChatMessage[],
			holdsAll: () => !core.mayHaveOlder(serverConfig.roomWindowMessages),
			syncedLink: () => (core.link?.isSynced ? core.link : undefined),
		});
		this.reads = this.#readsOf;
		this.#history = new HistoryState(() => core.loadOlder());
		this.history = this.#history;
		this.#presence = new PresenceTracker(user, () => core.link);
		this.presence = this.#presence;
		$effect(() => {
			const shown = options.shown?.() ?? true;
			untrack(() => this.#presence.show(shown));
		});
		this.#outgoing = new OutgoingStore(user.id);
		this.#uploads = new RoomUploads({
			roomId,
			userId: user.id,
			store: this.#outgoing,
			write: (message, attachments) => {
				const { content, replyToId } = message;
				this.#write({ kind: 'message', content, ...(replyToId ? { replyToId } : {}), attachments }, message);
			},
			has: (id) => core.messages.some((m) => m.clientMsgId === id && m.status !== 'failed'),
			changed: () => this.#refresh(),
		});
		const online = () => this.#uploads.resume();
		window.addEventListener('online', online);
		this.#stopUploads = () => window.removeEventListener('online', online);
		core.subscribe({
			change: () => this.#refresh(),
			synced: () => {
				this.#readsOf.send();
				this.#uploads.resume();
			},
			reads: (reads) => this.#readsOf.received(reads),
			awareness: () => this.#presence.readPeers(),
		});
		// A removed room has nothing to sync: the connection banner must not wait for it.
		this.#untrack = core.phase === 'removed' ? () => undefined : connection.track(this);
		this.#refresh();
		void this.#loadReads();
	}

	/** Writes a message; returns its id. */
	send(text: string, replyToId?: string): string {
		return this.#write({
			kind: 'message',
			content: normaliseContent(text),
			...(replyToId ? { replyToId } : {}),
		});
	}

	/**
	 * Sends `files` with an optional caption: shown at once (with previews and progress), uploaded when the device is
	 * online, and written to the room once every file is stored. Resolves with its id; throws with a reason.
	 */
	sendFiles(files: File[], caption: string, replyToId?: string): Promise<string> {
		if (this.readOnly || this.phase === 'removed') throw new Error('You cannot write in this room.');
		return this.#uploads.add(files, caption, replyToId);
	}

	/** Takes back a message whose files are not all sent yet. */
	cancelUpload(clientMsgId: string): Promise<void> {
		return this.#uploads.cancel(clientMsgId);
	}

	/** Tries again a message whose files were refused. */
	retryUpload(clientMsgId: string): Promise<void> {
		return this.#uploads.retry(clientMsgId);
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

	/** Writes an event (`newEvent` makes it, with the content filter). Returns its id, or throws. */
	#write(fields: NewEventFields, composed?: { clientMsgId: string; createdAt: string }): string {
		const event = newEvent(fields, this.user.id, composed);
		this.#core.write(event);
		if (event.kind === 'message') this.#presence.setTyping(false);
		return event.clientMsgId;
	}

	/** The message a reply points to, if this device has it. */
	find(clientMsgId: string): ChatMessage | undefined {
		return this.messages.find((m) => m.clientMsgId === clientMsgId);
	}

	dismissNotice(): void {
		this.#core.dismissNotice();
	}

	/** Closes the provider and the local database (the data stays on the device). */
	destroy(): void {
		void this.close();
	}

	/** `destroy`, resolved once the local database is closed (before it is deleted). */
	async close(): Promise<void> {
		if (this.#core.phase === 'closed') return;
		this.#dispose();
		this.#presence.close();
		this.#readsOf.close();
		this.#screen.close();
		this.#untrack();
		this.#stopUploads();
		this.#uploads.close();
		await this.#outgoing.close().catch(() => undefined);
		await this.#core.close();
	}

	/**
	 * The user is no longer in this room (removed, left, or the room is gone): it stays readable with `text` as
	 * its notice, nothing can be written, and it stops syncing.
	 */
	markRemoved(text: string): void {
		this.#presence.setTyping(false);
		this.#core.markRemoved(text);
		this.#untrack();
	}

	/** For end-to-end tests only: the live document, to inject an update the server refuses. */
	get debugDoc(): Y.Doc {
		return this.#core.doc;
	}

	get debugProvider(): HocuspocusProvider | undefined {
		const link = this.#core.link;
		return link instanceof HocuspocusLink ? link.provider : undefined;
	}

	/** Copies what the core holds into this facade's reactive fields (unchanged values trigger nothing). */
	#refresh(): void {
		const core = this.#core;
		if (core.phase !== 'closed') this.phase = core.phase;
		this.localReady = core.localReady;
		this.synced = core.synced;
		this.readOnly = core.readOnly;
		this.notice = core.notice;
		this.pendingCount = core.pendingCount + this.#uploads.count;
		this.#history.hasOlder = core.mayHaveOlder(serverConfig.roomWindowMessages);
		this.#history.loadingOlder = core.loadingOlder;
		this.#events = core.messages;
		this.#tellNewest(core.messages.at(-1));
		const ready = core.localReady && core.metaReady && this.#readsLoaded;
		if (ready && !this.metaReady) {
			this.metaReady = true;
			// The room's own messages are ready: shown from now on (and kept for next time).
			this.#screen.replace(() => this.#roomMessages);
		} else if (ready) this.#screen.saveSoon(() => this.#roomMessages);
	}

	/**
	 * Tells the list of the document's newest message when it changes (a new one, an edit, a delete): a client of
	 * protocol 6 works out the room's place and preview from it (docs/protocol.md section 10). In a microtask: the
	 * list's state must not change while a component or a derivation reads this store.
	 */
	#tellNewest(newest: ChatMessage | undefined): void {
		const tell = this.#onNewest;
		if (!tell || !newest || newest === this.#newest) return;
		this.#newest = newest;
		queueMicrotask(() => tell(newest));
	}

	async #loadReads(): Promise<void> {
		try {
			this.#readsOf.restore(await this.#meta.readState(this.roomId));
		} catch (error) {
			console.warn('cannot read the read position', error);
		}
		this.#readsLoaded = true;
		this.#refresh();
	}
}

/** The room's messages with the own ones waiting for their files, in time order (those are few, and newest). */
function withWaiting(messages: ChatMessage[], waiting: ChatMessage[]): ChatMessage[] {
	if (waiting.length === 0) return messages;
	const written = new Set(messages.slice(-200).map((m) => m.clientMsgId));
	const merged = [...messages];
	for (const message of waiting) {
		if (written.has(message.clientMsgId)) continue;
		let at = merged.length;
		while (at > 0 && (merged[at - 1] as ChatMessage).at > message.at) at--;
		merged.splice(at, 0, message);
	}
	return merged;
}

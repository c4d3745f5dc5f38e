import type * as Y from 'yjs';
import type { RoomEvent } from '../protocol/events.ts';
import {
	dispatchStateless,
	serverStateless,
	type MemberReadPosition,
	type ServerStateless,
	type StatelessHandlers,
} from '../protocol/stateless.ts';
import type { SessionEndReason } from '../protocol/user-channel.ts';
import { AckTracker } from './acks.ts';
import { RoomCopy, type CopyChange, type CopyEvents } from './copy.ts';
import { RoomHistory } from './history.ts';
import type { ChatMessage, RoomNotice, RoomPhase } from './model.ts';
import type { DocumentStore, HistorySource, Link, SyncMeta, Transport } from './ports.ts';
import { Rebuilder, type RebuildHost } from './rebuild.ts';
import { afterClose, afterLoginRefused, Refusals, type RoomAction } from './refusals.ts';
import { MessageView } from './view.ts';

export interface RoomSyncOptions {
	roomId: string;
	userId: string;
	transport: Transport;
	store: DocumentStore;
	meta: SyncMeta;
	history: HistorySource;
	/** The user is no longer in this room: read the device's copy with this notice, never connect. */
	removedNotice?: string | null;
	/** Reading the device's copy (and syncing) starts once this resolves; without it, at once. */
	after?: Promise<void>;
	/** The server's clock in ms (a rebuild keeps messages dated ahead of it as failed); Date.now by default. */
	now?: () => number;
	/** The session ended: the app signs out. Nothing by default. */
	endSession?(ended: SessionEndReason | 'unspecified'): void;
	/** This client is older than the server accepts. Nothing by default. */
	outdated?(reason: string): void;
	/** The server says the user is not in the room; by default the room marks itself removed. */
	removed?(): void;
}

/** What the core tells its owner; every listener is optional. */
export interface RoomSyncListener {
	/** Anything shown changed: messages, states, notice, phase, paging. */
	change?(): void;
	/** The document holds the server's copy (after each (re)connection). */
	synced?(link: Link): void;
	/** These own events are now known durable: acknowledged just now, or as the device kept it. */
	acked?(ids: string[]): void;
	/** Members' read positions, as the server reported them. */
	reads?(reads: MemberReadPosition[]): void;
	/** Someone's awareness changed. */
	awareness?(): void;
}

/**
 * One room as a device holds it, without a UI framework: the Yjs document (stored on the device and synced
 * through a transport), the messages folded from it event by event, the fate of each own event, the history
 * beyond the document, and what the server's refusals ask for. The app's `RoomStore` is a thin reactive facade
 * over it; tests drive it in Node with an in-memory transport or the real server.
 *
 * Own events go `pending` (written here) → `synced` (acknowledged by the server as durable, or received from it) →
 * or `failed` (refused for good). Acknowledged ids are kept on the device, so a restart shows the same states.
 *
 * When the server refuses an update of this document, the refused items stay in the local document and would be
 * re-sent forever, and everything written after them depends on them. So the room is rebuilt: a fresh document
 * (new Yjs client id) synced from the server, into which the own valid messages the server lacks are written again.
 */
export class RoomSync {
	readonly roomId: string;
	readonly userId: string;

	#phase: RoomPhase = 'loading';
	#localReady = false;
	#metaReady = false;
	#synced = false;
	#readOnly = false;
	#notice: RoomNotice | null = null;
	/** The notice clears itself on the next sync (a passing condition), or stays until dismissed. */
	#noticeTransient = false;

	readonly #options: RoomSyncOptions;
	readonly #acks: AckTracker;
	readonly #history: RoomHistory;
	readonly #view: MessageView;
	readonly #refusals: Refusals;
	readonly #rebuilder: Rebuilder;
	readonly #listeners = new Set<RoomSyncListener>();
	#copy: RoomCopy;

	constructor(options: RoomSyncOptions) {
		this.#options = options;
		this.roomId = options.roomId;
		this.userId = options.userId;
		const { roomId, userId, meta } = options;
		this.#acks = new AckTracker({
			roomId,
			userId,
			meta,
			currentLink: () => this.link,
			changed: (ids) => {
				this.#view.setFailed(ids.flatMap((id) => this.#acks.failed.get(id) ?? []));
				this.#view.refresh(ids);
				const acked = ids.filter((id) => this.#acks.acked.has(id));
				if (acked.length > 0) for (const listener of this.#listeners) listener.acked?.(acked);
				this.#emit();
			},
		});
		this.#view = new MessageView(userId, (id) => this.#acks.statusOf(id));
		this.#history = new RoomHistory({
			roomId,
			meta,
			source: options.history,
			known: (id) => this.#copy.valid.has(id),
			changed: (events) => {
				for (const e of events) if (!this.#copy.valid.has(e.clientMsgId)) this.#view.set(e);
				this.#emit();
			},
		});
		this.#refusals = new Refusals({
			endSession: (ended) => options.endSession?.(ended),
			outdated: (reason) => options.outdated?.(reason),
			removed: options.removed ?? (() => this.markRemoved('You are no longer a member of this room')),
			rebuild: (reason) => {
				// During a rebuild the fresh copy has written nothing yet: this refusal cannot be its own.
				if (this.#rebuilder.running) this.#reopenSoon();
				else void this.#rebuilder.start(reason);
			},
			reopenSoon: (delayMs) => this.#reopenSoon(delayMs),
			notice: (notice) => this.#setNotice(notice, true),
		});
		this.#rebuilder = new Rebuilder(this.#rebuildHost());
		if (options.removedNotice) {
			this.#phase = 'removed';
			this.#setNotice({ kind: 'error', text: options.removedNotice }, false);
		}
		this.#copy = this.#openCopy(options.after);
		void this.#loadMeta();
	}

	/*
	 * What the room shows.
	 */

	get phase(): RoomPhase {
		return this.#phase;
	}
	/** The device's copy of the document has been read (history is showable, even offline). */
	get localReady(): boolean {
		return this.#localReady;
	}
	/** Acknowledgements, failures and history have been read from the device. */
	get metaReady(): boolean {
		return this.#metaReady;
	}
	/** The document is connected and holds the server's copy. */
	get synced(): boolean {
		return this.#synced;
	}
	get readOnly(): boolean {
		return this.#readOnly;
	}
	get notice(): RoomNotice | null {
		return this.#notice;
	}
	/** A rebuild after a refusal is under way. */
	get rebuilding(): boolean {
		return this.#rebuilder.running;
	}
	/** The messages in display order, each own one with its state; a new array only when something changed. */
	get messages(): readonly ChatMessage[] {
		return this.#view.list;
	}
	/** Own events of the document neither acknowledged nor refused. */
	get pendingCount(): number {
		return this.#acks.pendingCount;
	}
	/** Own events the server acknowledged as durable. */
	get acked(): ReadonlySet<string> {
		return this.#acks.acked;
	}
	/** Every event the room holds (document and history), of every kind. */
	events(): IterableIterator<RoomEvent> {
		return this.#view.events();
	}
	/** Whether the server may hold older messages than the device shows (see `RoomHistory.mayHaveOlder`). */
	mayHaveOlder(windowMessages: number): boolean {
		return this.#history.mayHaveOlder(this.#synced, this.#view.list.length, windowMessages);
	}
	get loadingOlder(): boolean {
		return this.#history.loadingOlder;
	}
	/** The live document (replaced by a rebuild): for tests and tools. */
	get doc(): Y.Doc {
		return this.#copy.doc;
	}
	/** The live link; undefined while not syncing or once closed. */
	get link(): Link | undefined {
		return this.#phase === 'closed' ? undefined : this.#copy.link;
	}

	/*
	 * What the room does.
	 */

	/** Listens to the room; returns the function that stops listening. */
	subscribe(listener: RoomSyncListener): () => void {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
	}

	/** Writes an own event (one new key in one transaction), or keeps it for the fresh copy during a rebuild. */
	write(event: RoomEvent): void {
		if (this.#readOnly) throw new Error('You can only read this room.');
		if (this.#phase !== 'ready' && this.#phase !== 'loading') throw new Error('This room is not available.');
		// While a rebuild tears the refused copy down, there is no document to write into: the event waits
		// and goes into the fresh copy with the carried-over ones.
		if (this.#rebuilder.hold(event)) {
			this.#view.set(event);
			this.#emit();
		} else this.#copy.write(event);
	}

	/** Brings in the next page of older messages from the server; resolves with how many it added. */
	loadOlder(): Promise<number> {
		return this.#history.loadOlder();
	}

	dismissNotice(): void {
		this.#notice = null;
		this.#emit();
	}

	/**
	 * The user is no longer in this room (removed, left, or the room is gone): it stays readable with `text` as
	 * its notice, nothing can be written, and it stops syncing.
	 */
	markRemoved(text: string): void {
		this.#phase = 'removed';
		this.#synced = false;
		this.#setNotice({ kind: 'error', text }, false);
		this.#copy.stopSyncing();
		this.#emit();
	}

	/** Stops syncing and closes the device's copy (its data stays); resolves once it is closed. */
	async close(): Promise<void> {
		if (this.#phase === 'closed') return;
		this.#phase = 'closed';
		this.#synced = false;
		this.#acks.close();
		this.#listeners.clear();
		await this.#copy.close();
	}

	/*
	 * Inside.
	 */

	#emit(): void {
		for (const listener of this.#listeners) listener.change?.();
	}

	async #loadMeta(): Promise<void> {
		const { meta } = this.#options;
		try {
			const [acked, failed, history] = await Promise.all([
				meta.ackedIds(this.roomId),
				meta.failed(this.roomId),
				meta.history(this.roomId),
			]);
			this.#history.restore(history);
			this.#acks.restore(acked, failed);
		} catch (error) {
			console.warn('cannot read room metadata', error);
		}
		this.#metaReady = true;
		this.#emit();
	}

	#openCopy(after?: Promise<void>): RoomCopy {
		return new RoomCopy({
			after,
			roomId: this.roomId,
			userId: this.userId,
			transport: this.#options.transport,
			store: this.#options.store,
			live: this.#phase !== 'removed',
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
			this.#localReady = true;
			if (this.#phase === 'loading') this.#phase = 'ready';
			this.#emit();
		},
		synced: (link) => {
			this.#synced = true;
			if (this.#noticeTransient) this.#notice = null;
			this.#acks.ask(link);
			for (const listener of this.#listeners) listener.synced?.(link);
			this.#emit();
		},
		offline: () => {
			this.#synced = false;
			this.#emit();
		},
		closed: (reason) => this.#act(afterClose(reason), reason),
		authenticated: (readOnly, link) => {
			this.#readOnly = readOnly;
			this.#refusals.loggedIn();
			// Every (re)connection: ask about what was never acknowledged, whether or not a sync follows.
			this.#acks.keepAsking(link, true);
			this.#emit();
		},
		loginRefused: (reason) => this.#act(afterLoginRefused(reason), reason),
		stateless: (payload) => dispatchStateless(serverStateless, payload, this.#statelessHandlers, undefined),
		awareness: () => {
			for (const listener of this.#listeners) listener.awareness?.();
		},
		changed: (change) => this.#applyChange(change),
	};

	#applyChange({ set, invalid, ackedNow, archived }: CopyChange): void {
		for (const event of set) {
			this.#view.set(event);
			if (event.senderId === this.userId) this.#acks.track(event.clientMsgId, true);
		}
		for (const id of invalid) {
			this.#view.delete(id);
			this.#acks.track(id, false);
		}
		for (const event of archived) this.#acks.track(event.clientMsgId, false);
		this.#history.keep(archived);
		// Acks last: `ack` emits, with the view up to date.
		if (ackedNow.length > 0) this.#acks.ack(ackedNow);
		else this.#emit();
	}

	/** What the server tells this room (stateless.ts); other types are for newer clients and ignored. */
	readonly #statelessHandlers: StatelessHandlers<ServerStateless> = {
		ack: (message) => this.#acks.ack(message.clientMsgIds),
		reads: (message) => {
			for (const listener of this.#listeners) listener.reads?.(message.reads);
		},
	};

	#setNotice(notice: RoomNotice, transient: boolean): void {
		this.#notice = notice;
		this.#noticeTransient = transient;
		this.#emit();
	}

	/** Carries out what the server's close or login refusal asks for (refusals.ts decides). */
	#act(action: RoomAction, reason: string): void {
		this.#synced = false;
		this.#refusals.act(action, reason);
		this.#emit();
	}

	/** Replaces the link of the same document (a new session on the socket: a new handshake). */
	#reopenSoon(delayMs = 500): void {
		if (this.#phase !== 'removed' && this.#phase !== 'closed') this.#copy.reopenSoon(delayMs);
	}

	/** What a rebuild (rebuild.ts) reads and changes of this room. */
	#rebuildHost(): RebuildHost {
		return {
			roomId: this.roomId,
			userId: this.userId,
			copy: () => this.#copy,
			replaceCopy: async () => {
				await this.#copy.discard();
				this.#synced = false;
				if (this.#phase === 'closed') return null;
				this.#acks.untrackAll();
				this.#copy = this.#openCopy();
				this.#emit();
				return this.#copy;
			},
			isCurrent: (copy) => this.#phase !== 'closed' && this.#copy === copy,
			fail: (failed) => this.#acks.fail(failed),
			isAcked: (id) => this.#acks.acked.has(id),
			keepHistory: (archived) => this.#history.keep(archived),
			settle: () => {
				this.#view.reset([...this.#history.events.values(), ...this.#copy.valid.values()]);
				this.#emit();
			},
			notify: (notice) => this.#setNotice(notice, false),
			now: this.#options.now ?? Date.now,
		};
	}
}

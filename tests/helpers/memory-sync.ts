import * as Y from 'yjs';
import { collabRejections } from '../../src/lib/protocol/errors.ts';
import {
	compareEvents,
	messagesMapName,
	roomEvent,
	type MessageEvent,
	type RoomEvent,
} from '../../src/lib/protocol/events.ts';
import { readClientStateless } from '../../src/lib/protocol/stateless.ts';
import type { FailedMessage } from '../../src/lib/sync/model.ts';
import type {
	DocumentStore,
	HistorySource,
	Link,
	LinkEvents,
	StoredDocument,
	SyncMeta,
	Transport,
} from '../../src/lib/sync/ports.ts';

/*
 * The sync core's ports in memory, for its tests in Node: a small server that speaks the room protocol's rules
 * (members, one new key per event and never an overwrite, own sender only, acks, `pending` answers, trimming into
 * an archive that history pages come from) over links that deliver asynchronously, in order, like a socket; and a
 * device (documents and metadata) made of maps.
 */

/** Runs `fn` after what is already queued, as a message over a socket would arrive. */
const later = (fn: () => void) => setTimeout(fn, 0);

type Access = 'write' | 'read';

/** One room on an in-memory server. */
export class MemoryServer {
	readonly doc = new Y.Doc();
	readonly map: Y.Map<unknown> = this.doc.getMap(messagesMapName);
	readonly members = new Map<string, Access>();
	/** Events trimmed from the document, oldest first: where history pages come from. */
	readonly archive: RoomEvent[] = [];
	/** Every update a client sent and the server refused, with the reason. */
	readonly refused: string[] = [];
	/** While set, the server stores what it gets but its acks are lost on the way. */
	dropAcks = false;
	/** Refuse every update of this user (a server whose rules changed under a client). */
	refuseFrom: string | null = null;
	readonly #sessions = new Set<MemoryLink>();
	#online = true;

	constructor(members: Record<string, Access> = {}) {
		for (const [id, access] of Object.entries(members)) this.members.set(id, access);
	}

	/** The transport one user's clients open links with. */
	transport(userId: string): Transport {
		return { open: (_roomId, doc, events) => new MemoryLink(this, userId, doc, events) };
	}

	/** History pages from the archive, newest first, like the server's mirror. */
	readonly history: HistorySource = async (_roomId, before, limit) => {
		const older = this.archive.filter((e) => before === undefined || Date.parse(e.createdAt) < before);
		const page = older.slice(-limit);
		const first = page[0];
		return {
			events: page,
			nextBefore: older.length > limit && first ? Date.parse(first.createdAt) : null,
		};
	};

	/** The network goes away (every link drops) or comes back (every live link reconnects and syncs). */
	setOnline(online: boolean): void {
		this.#online = online;
		for (const session of this.#sessions) {
			if (online) later(() => session.connect());
			else session.drop();
		}
	}

	get online(): boolean {
		return this.#online;
	}

	/** Takes a member out: their open links are closed with `not-a-member`, and they cannot log in again. */
	remove(userId: string): void {
		this.members.delete(userId);
		for (const session of this.#sessions)
			if (session.userId === userId) session.close(collabRejections.notAMember.reason);
	}

	/** The message events of the document, in display order. */
	messages(): MessageEvent[] {
		return this.events().filter((e): e is MessageEvent => e.kind === 'message');
	}

	events(): RoomEvent[] {
		return [...this.map.values()].map((v) => roomEvent.parse(v)).sort(compareEvents);
	}

	/** Keeps the newest `keep` messages in the document; the older ones (and what targets them) go to the archive. */
	trim(keep: number): void {
		const old = this.messages().slice(0, -keep);
		if (old.length === 0) return;
		this.archive.push(...old);
		this.archive.sort(compareEvents);
		const relay = (update: Uint8Array) => {
			for (const session of this.#sessions) session.deliver(update);
		};
		this.doc.on('update', relay);
		this.doc.transact(() => {
			for (const e of old) this.map.delete(e.clientMsgId);
		}, this);
		this.doc.off('update', relay);
	}

	/** @internal A link was opened: it connects now and whenever the network comes back. */
	attach(session: MemoryLink): void {
		this.#sessions.add(session);
	}

	/** @internal A link was destroyed. */
	detach(session: MemoryLink): void {
		this.#sessions.delete(session);
	}

	/** @internal An update from a client: checked, applied, acknowledged and relayed, or refused with a close. */
	receive(session: MemoryLink, update: Uint8Array): void {
		const verdict = this.#check(session, update);
		if (verdict.refused) {
			this.refused.push(verdict.refused);
			session.close(`${collabRejections.invalidUpdate.reason}: ${verdict.refused}`);
			return;
		}
		Y.applyUpdate(this.doc, update, session);
		if (verdict.own.length > 0 && !this.dropAcks) session.ack(verdict.own);
		for (const other of this.#sessions) if (other !== session) other.deliver(update);
	}

	/** @internal Which of these ids of the asker the server holds. */
	holds(userId: string, ids: string[]): string[] {
		const archived = new Set(this.archive.map((e) => e.clientMsgId));
		return ids.filter((id) => {
			const value = this.map.get(id) as RoomEvent | undefined;
			return value ? value.senderId === userId : archived.has(id);
		});
	}

	/** Applies `update` to a copy of the document and judges every key it changed. */
	#check(session: MemoryLink, update: Uint8Array): { refused?: string; own: string[] } {
		if (this.members.get(session.userId) !== 'write') return { refused: 'read-only', own: [] };
		if (this.refuseFrom === session.userId) return { refused: 'refused by the test', own: [] };
		const scratch = new Y.Doc();
		Y.applyUpdate(scratch, Y.encodeStateAsUpdate(this.doc));
		const map = scratch.getMap(messagesMapName);
		const changed = new Set<string>();
		map.observe((event) => {
			for (const key of event.keysChanged) changed.add(key);
		});
		Y.applyUpdate(scratch, update);
		const own: string[] = [];
		for (const key of changed) {
			if (this.map.has(key)) return { refused: `overwrites ${key}`, own };
			const parsed = roomEvent.safeParse(map.get(key));
			if (!parsed.success || parsed.data.clientMsgId !== key) return { refused: `invalid event ${key}`, own };
			if (parsed.data.senderId !== session.userId) return { refused: `senderId of ${key}`, own };
			own.push(key);
		}
		return { own };
	}
}

/** One client's session with a `MemoryServer`. */
class MemoryLink implements Link {
	readonly userId: string;
	readonly awareness = null;
	isSynced = false;
	readonly #server: MemoryServer;
	readonly #doc: Y.Doc;
	readonly #events: LinkEvents;
	#connected = false;
	#closed = false;
	#destroyed = false;

	constructor(server: MemoryServer, userId: string, doc: Y.Doc, events: LinkEvents) {
		this.#server = server;
		this.userId = userId;
		this.#doc = doc;
		this.#events = events;
		server.attach(this);
		doc.on('update', this.#onUpdate);
		later(() => this.connect());
	}

	get origin(): unknown {
		return this;
	}

	/** Logs in and syncs, both ways (what the server lacks goes through its checks like any update). */
	connect(): void {
		if (this.#destroyed || this.#closed || this.#connected || !this.#server.online) return;
		const access = this.#server.members.get(this.userId);
		if (!access) {
			this.#events.loginRefused(collabRejections.notAMember.reason);
			return;
		}
		this.#connected = true;
		this.#events.authenticated(access === 'read');
		later(() => {
			if (!this.#connected) return;
			const missing = Y.encodeStateAsUpdate(this.#doc, Y.encodeStateVector(this.#server.doc));
			// (An empty update is two bytes: no structs, no deletions.)
			if (missing.length > 2) this.#server.receive(this, missing);
			if (!this.#connected) return;
			Y.applyUpdate(this.#doc, Y.encodeStateAsUpdate(this.#server.doc, Y.encodeStateVector(this.#doc)), this);
			this.isSynced = true;
			this.#events.synced();
		});
	}

	/** The connection drops; it comes back with the network (`MemoryServer.setOnline`). */
	drop(): void {
		if (!this.#connected) return;
		this.#connected = false;
		this.isSynced = false;
		later(() => this.#destroyed || this.#events.offline());
	}

	/** The server ends this session with `reason`; it does not come back. */
	close(reason: string): void {
		this.#closed = true;
		this.drop();
		later(() => this.#destroyed || this.#events.closed(reason));
	}

	deliver(update: Uint8Array): void {
		later(() => this.#connected && Y.applyUpdate(this.#doc, update, this));
	}

	ack(ids: string[]): void {
		later(
			() => this.#connected && this.#events.stateless(JSON.stringify({ type: 'ack', clientMsgIds: ids })),
		);
	}

	sendStateless(payload: string): void {
		if (!this.#connected) return;
		later(() => {
			const message = readClientStateless(payload);
			if (!this.#connected || message?.type !== 'pending') return;
			const held = this.#server.holds(this.userId, message.clientMsgIds);
			if (held.length > 0) this.ack(held);
		});
	}

	destroy(): void {
		this.#destroyed = true;
		this.#doc.off('update', this.#onUpdate);
		this.drop();
		this.#server.detach(this);
	}

	#onUpdate = (update: Uint8Array, origin: unknown): void => {
		if (origin === this || !this.#connected || !this.isSynced) return;
		later(() => this.#connected && this.#server.receive(this, update));
	};
}

/** A device's stored documents, as update logs in memory. */
export class MemoryDocumentStore implements DocumentStore {
	readonly logs = new Map<string, Uint8Array[]>();
	readonly #immediate: boolean;

	/**
	 * `immediate`: a document is read while `open` runs (a client whose document is at once its whole state, as
	 * the tests' clients are); otherwise a moment later, as from IndexedDB.
	 */
	constructor(options: { immediate?: boolean } = {}) {
		this.#immediate = options.immediate ?? false;
	}

	open(roomId: string, doc: Y.Doc): StoredDocument {
		const log = this.logs.get(roomId) ?? [];
		this.logs.set(roomId, log);
		const store = (update: Uint8Array) => log.push(update);
		const load = () => {
			Y.transact(doc, () => {
				for (const update of log) Y.applyUpdate(doc, update);
			});
			doc.on('update', store);
		};
		if (this.#immediate) load();
		const loaded = this.#immediate ? Promise.resolve() : Promise.resolve().then(load);
		return {
			loaded,
			close: async () => {
				await loaded;
				doc.off('update', store);
			},
		};
	}

	async clear(roomId: string): Promise<void> {
		this.logs.delete(roomId);
	}

	/** The room's document as stored. */
	read(roomId: string): Y.Doc {
		const doc = new Y.Doc();
		for (const update of this.logs.get(roomId) ?? []) Y.applyUpdate(doc, update);
		return doc;
	}
}

/** A device's room metadata in memory. */
export class MemoryMeta implements SyncMeta {
	readonly acked = new Map<string, Set<string>>();
	readonly failures: FailedMessage[] = [];
	readonly archived = new Map<string, Map<string, RoomEvent>>();

	async ackedIds(roomId: string) {
		return [...(this.acked.get(roomId) ?? [])];
	}
	async addAcked(roomId: string, ids: Iterable<string>) {
		const set = this.acked.get(roomId) ?? new Set<string>();
		for (const id of ids) set.add(id);
		this.acked.set(roomId, set);
	}
	async failed(roomId: string) {
		return this.failures.filter((f) => f.roomId === roomId);
	}
	async addFailed(messages: FailedMessage[]) {
		this.failures.push(...messages);
	}
	async history(roomId: string) {
		return [...(this.archived.get(roomId)?.values() ?? [])];
	}
	async addHistory(roomId: string, events: RoomEvent[]) {
		const map = this.archived.get(roomId) ?? new Map<string, RoomEvent>();
		for (const e of events) map.set(e.clientMsgId, e);
		this.archived.set(roomId, map);
	}
}

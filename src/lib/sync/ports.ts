import type * as Y from 'yjs';
import type { Awareness } from 'y-protocols/awareness';
import type { RoomEvent } from '../protocol/events.ts';
import type { FailedMessage } from './model.ts';

/*
 * What the room sync core needs from outside, as interfaces: the browser gives it a Hocuspocus provider on the
 * shared socket and IndexedDB (hocuspocus.ts, indexeddb.ts), tests give it the same provider in Node or an
 * in-memory server, and maps for the device.
 */

/** What a link reports about its session with the server. */
export interface LinkEvents {
	/** The document holds the server's copy (after each (re)connection). */
	synced(): void;
	/** The connection dropped; the link reconnects by itself. */
	offline(): void;
	/** The server closed this session, with a reason (docs/protocol.md, the close-reason table). */
	closed(reason: string): void;
	authenticated(readOnly: boolean): void;
	loginRefused(reason: string): void;
	/** A stateless message of the server (stateless.ts). */
	stateless(payload: string): void;
	/** Someone's awareness state changed. */
	awareness(): void;
}

/** One session of one room document with the server. It reconnects by itself until destroyed. */
export interface Link {
	/** The origin of the transactions in which it applies what the server sent. */
	readonly origin: unknown;
	readonly isSynced: boolean;
	/** Who else has the room open; null where the transport has no presence. */
	readonly awareness: Awareness | null;
	sendStateless(payload: string): void;
	destroy(): void;
}

export interface Transport {
	/**
	 * Opens a session of `doc`, the document of room `roomId`, with the server. What it reports before `open`
	 * returns is ignored: a sync or a refusal must come later (they need the server).
	 */
	open(roomId: string, doc: Y.Doc, events: LinkEvents): Link;
}

/** A room document as stored on the device. */
export interface StoredDocument {
	/** Resolves once the stored copy is in the document. */
	readonly loaded: Promise<void>;
	/** Stops storing (what is stored stays). */
	close(): Promise<void>;
}

/** Where the device keeps room documents. */
export interface DocumentStore {
	/** Reads the stored copy of room `roomId` into `doc`, and from then on stores every update of `doc`. */
	open(roomId: string, doc: Y.Doc): StoredDocument;
	/** Deletes the stored copy. */
	clear(roomId: string): Promise<void>;
}

/** What the device keeps beside a room's document. */
export interface SyncMeta {
	ackedIds(roomId: string): Promise<string[]>;
	addAcked(roomId: string, ids: Iterable<string>): Promise<void>;
	failed(roomId: string): Promise<FailedMessage[]>;
	addFailed(messages: FailedMessage[]): Promise<void>;
	history(roomId: string): Promise<RoomEvent[]>;
	addHistory(roomId: string, events: RoomEvent[]): Promise<void>;
}

/** One page of a room's older events; `nextBefore` is where the next page ends, null when there is nothing older. */
export interface HistoryPage {
	events: RoomEvent[];
	nextBefore: number | null;
}

/** Asks the server for the page of events before `before` (undefined: the newest page). */
export type HistorySource = (
	roomId: string,
	before: number | undefined,
	limit: number,
) => Promise<HistoryPage>;

/**
 * One simulated client: a real provider (`@hocuspocus/provider`, or `y-websocket` for the `yws` target) with its
 * own Y.Doc and socket. Kept apart from bench/harness.ts so that a load generator process (bench/generator.ts)
 * loads only what a client needs.
 */
import { randomBytes } from 'node:crypto';
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import type { Awareness } from 'y-protocols/awareness';
import { WebsocketProvider } from 'y-websocket';
import { io } from 'socket.io-client';
import * as Y from 'yjs';
import type { Target } from './harness.ts';

/** What a load generator needs to connect one simulated client (bench/generator.ts gets these over IPC). */
export interface ClientSpec {
	target: Target;
	index: number;
	roomIndex: number;
	room: string;
	url: string;
	userId: string;
	token: string;
}

/** A message as the load writes it (the room document's `message` event). */
export interface BenchMessage {
	kind: 'message';
	clientMsgId: string;
	senderId: string;
	content: string;
	createdAt: string;
}

export interface Client {
	index: number;
	roomIndex: number;
	userId: string;
	/** Writes `message` as the client would (one new key in the room document, or one Socket.IO emit). */
	write(message: BenchMessage): void;
	/** Calls `listener` with the id of every message another member wrote, as it arrives. */
	onMessage(listener: (clientMsgId: string) => void): void;
	synced(): boolean;
	/** True while the client holds local changes the server has not confirmed (Hocuspocus providers only). */
	unsynced(): boolean;
	/** Pretends the client last renewed its presence at `at` (ms since 1970), so it renews 15 s after that. */
	backdatePresence(at: number): void;
	destroy(): void;
}

/** A client of the Yjs targets: its room document is in `doc`. */
export interface DocClient extends Client {
	doc: Y.Doc;
}

interface DocClientParts {
	doc: Y.Doc;
	index: number;
	roomIndex: number;
	userId: string;
	synced(): boolean;
	unsynced(): boolean;
	backdatePresence(at: number): void;
	destroy(): void;
}

/** Adds the message operations every Yjs client shares: a message is one new key in `messages`. */
function docClient(parts: DocClientParts): DocClient {
	const messages = parts.doc.getMap('messages');
	return {
		...parts,
		write: (message) => parts.doc.transact(() => messages.set(message.clientMsgId, message)),
		onMessage: (listener) =>
			messages.observe((event, tx) => {
				if (tx.local) return;
				// Trimming (soak) removes old keys: only an added key is a delivery.
				for (const [key, change] of event.changes.keys) if (change.action === 'add') listener(key);
			}),
	};
}

/** A client of the `seed` target (bench/targets/seed-socketio.ts): Socket.IO, one emit per message. */
function seedClient(spec: ClientSpec): Client {
	const socket = io(spec.url, {
		transports: ['websocket'],
		auth: { token: spec.token, room: spec.room },
		reconnection: false,
	});
	let connected = false;
	let pending = 0;
	socket.on('connect', () => (connected = true));
	return {
		index: spec.index,
		roomIndex: spec.roomIndex,
		userId: spec.userId,
		write: (message) => {
			pending++;
			socket.emit('message', message, () => pending--);
		},
		onMessage: (listener) => socket.on('message', (m: BenchMessage) => listener(m.clientMsgId)),
		synced: () => connected,
		unsynced: () => pending > 0,
		backdatePresence: () => {},
		destroy: () => socket.disconnect(),
	};
}

/** Connects one simulated client of `spec.target`. */
export function connectClient(spec: ClientSpec): Client {
	return spec.target === 'seed' ? seedClient(spec) : connectDocClient(spec);
}

/** Connects one client of a Yjs target (every one but `seed`), whose room document the caller may read. */
export function connectDocClient(spec: ClientSpec): DocClient {
	if (spec.target === 'seed') throw new Error('the seed target has no room document');
	const { index, roomIndex, room, url, userId, token } = spec;
	const doc = new Y.Doc();
	const backdate = (awareness: Awareness | null) => (at: number) => {
		const meta = awareness?.meta.get(awareness.clientID);
		if (meta) meta.lastUpdated = at;
	};
	if (spec.target === 'yws') {
		const provider = new WebsocketProvider(url, `room:${room}`, doc, { disableBc: true });
		return docClient({
			doc,
			index,
			roomIndex,
			userId,
			synced: () => provider.synced,
			unsynced: () => false,
			backdatePresence: backdate(provider.awareness),
			destroy: () => provider.destroy(),
		});
	}
	const socket = new HocuspocusProviderWebsocket({ url });
	const provider = new HocuspocusProvider({
		websocketProvider: socket,
		name: `room:${room}`,
		document: doc,
		token,
	});
	provider.attach();
	return docClient({
		doc,
		index,
		roomIndex,
		userId,
		synced: () => provider.isSynced,
		unsynced: () => provider.hasUnsyncedChanges,
		backdatePresence: backdate(provider.awareness),
		destroy: () => {
			provider.destroy();
			socket.destroy();
		},
	});
}

/**
 * A uuid (version 8: the layout is ours) whose first 48 bits are the send time in µs after an epoch the
 * load generator's processes share; the other
 * 74 are random.
 */
export function stampedId(sentUs: number): string {
	const time = Math.floor(sentUs).toString(16).padStart(12, '0').slice(-12);
	const rand = randomBytes(10).toString('hex');
	const variant = (8 + (parseInt(rand[3] as string, 16) & 3)).toString(16);
	return `${time.slice(0, 8)}-${time.slice(8)}-8${rand.slice(0, 3)}-${variant}${rand.slice(4, 7)}-${rand.slice(7, 19)}`;
}

/** The send time of a `stampedId`, µs after the epoch; null for any other key. */
export function sentAtUs(key: string): number | null {
	if (key.length !== 36 || key[14] !== '8') return null;
	return parseInt(key.slice(0, 8) + key.slice(9, 13), 16);
}

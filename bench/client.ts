/**
 * One simulated client: a real provider (`@hocuspocus/provider`, or `y-websocket` for the `yws` target) with its
 * own Y.Doc and socket. Kept apart from bench/harness.ts so that a load generator process (bench/generator.ts)
 * loads only what a client needs.
 */
import { randomBytes } from 'node:crypto';
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import type { Awareness } from 'y-protocols/awareness';
import { WebsocketProvider } from 'y-websocket';
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

export interface Client {
	doc: Y.Doc;
	index: number;
	roomIndex: number;
	userId: string;
	synced(): boolean;
	/** True while the client holds local changes the server has not confirmed (Hocuspocus providers only). */
	unsynced(): boolean;
	/** Pretends the client last renewed its presence at `at` (ms since 1970), so it renews 15 s after that. */
	backdatePresence(at: number): void;
	destroy(): void;
}

export function connectClient(spec: ClientSpec): Client {
	const { index, roomIndex, room, url, userId, token } = spec;
	const doc = new Y.Doc();
	const backdate = (awareness: Awareness | null) => (at: number) => {
		const meta = awareness?.meta.get(awareness.clientID);
		if (meta) meta.lastUpdated = at;
	};
	if (spec.target === 'yws') {
		const provider = new WebsocketProvider(url, `room:${room}`, doc, { disableBc: true });
		return {
			doc,
			index,
			roomIndex,
			userId,
			synced: () => provider.synced,
			unsynced: () => false,
			backdatePresence: backdate(provider.awareness),
			destroy: () => provider.destroy(),
		};
	}
	const socket = new HocuspocusProviderWebsocket({ url });
	const provider = new HocuspocusProvider({
		websocketProvider: socket,
		name: `room:${room}`,
		document: doc,
		token,
	});
	provider.attach();
	return {
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
	};
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

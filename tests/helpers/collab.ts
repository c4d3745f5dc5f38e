import { randomUUID } from 'node:crypto';
import { HocuspocusProviderWebsocket, type HocuspocusProvider } from '@hocuspocus/provider';
import * as Y from 'yjs';
import {
	compareEvents,
	messagesMapName,
	type MessageEvent,
	type RoomEvent,
} from '../../src/lib/protocol/events.ts';
import { serverStateless } from '../../src/lib/protocol/stateless.ts';
import { HocuspocusLink, HocuspocusTransport } from '../../src/lib/sync/hocuspocus.ts';
import type { HistorySource, Transport } from '../../src/lib/sync/ports.ts';
import { RoomSync } from '../../src/lib/sync/room-sync.ts';
import { MemoryDocumentStore, MemoryMeta } from './memory-sync.ts';

/** An event without what the writer fills in (its id, sender and time). */
type NewEvent = RoomEvent extends infer E
	? E extends RoomEvent
		? Omit<E, 'clientMsgId' | 'senderId' | 'createdAt'>
		: never
	: never;

export interface TestClient {
	/** The room's sync core: the same one the app runs behind its RoomStore. */
	readonly sync: RoomSync;
	/** The live document (a rebuild after a refusal replaces it). */
	readonly doc: Y.Doc;
	/** The live provider (replaced when the core reopens the room); the last one once it stopped syncing. */
	readonly provider: HocuspocusProvider;
	socket: HocuspocusProviderWebsocket;
	/** Resolves with the reason of the first refused login. */
	authFailure: Promise<string>;
	/** Writes a message event through the core, as the app does: one new key, one transaction. */
	send(content: string, senderId?: string): MessageEvent;
	/** Writes any event (an edit, a delete, a reaction) as this user, now, through the core. */
	write(fields: NewEvent): RoomEvent;
	/**
	 * Writes an event as `write` does, but straight into the document, past the core's checks (a room it knows it
	 * may not write to): what a hostile, outdated or broken client does.
	 */
	force(fields: NewEvent): RoomEvent;
	/** The message events (kind `message`) of the document. */
	messages(): MessageEvent[];
	/** Every event of the document, of every kind. */
	events(): RoomEvent[];
	/** Resolves when the document is synced and every own event is acknowledged by the server as durable. */
	synced(timeoutMs?: number): Promise<void>;
	/** clientMsgIds known durable: acknowledged by the server, or received from it. */
	acked: ReadonlySet<string>;
	/** When each became known durable (Date.now()). */
	ackedAt: Map<string, number>;
	/** Members' read positions as the server last reported them, by user id. */
	reads: Map<string, { at: string; clientMsgId: string }>;
	/** Each `reads` message received, in order: the readers it named. */
	readMessages: string[][];
	/** Reports a read position (a `read` stateless message). */
	read(position: { at: string; clientMsgId: string } | null): void;
	destroy(): void;
}

/** The history source of clients that page no history. */
const noHistory: HistorySource = async () => ({ events: [], nextBefore: null });

/**
 * A client of room:<roomId> in Node: the app's room sync core (src/lib/sync/) on a socket of its own, with the
 * device in memory. Given a `doc` (a device's stored copy), it starts from that copy, and its own messages in it
 * count as written and wait for their acks like new ones.
 */
export function connect(
	wsUrl: string,
	roomId: string,
	/** A function is asked again on every (re)connect and whenever the server asks for a fresh token. */
	token: string | null | (() => Promise<string>),
	userId = '',
	options: { doc?: Y.Doc; history?: HistorySource } = {},
): TestClient {
	const socket = new HocuspocusProviderWebsocket({ url: wsUrl, delay: 100, maxDelay: 1_000, minDelay: 100 });
	const hocuspocus = new HocuspocusTransport({ socket: () => socket, token });
	let failed!: (reason: string) => void;
	const authFailure = new Promise<string>((resolve) => (failed = resolve));
	let lastProvider: HocuspocusProvider | undefined;
	const reads = new Map<string, { at: string; clientMsgId: string }>();
	const readMessages: string[][] = [];
	// The transport as a test sees it: refused logins and read positions are noted on the way through.
	const transport: Transport = {
		open(room, doc, events) {
			const link = hocuspocus.open(room, doc, {
				...events,
				loginRefused: (reason) => {
					failed(reason);
					events.loginRefused(reason);
				},
				stateless: (payload) => {
					const message = serverStateless.safeParse(JSON.parse(payload));
					if (message.success && message.data.type === 'reads') {
						for (const { userId: reader, ...position } of message.data.reads) reads.set(reader, position);
						readMessages.push(message.data.reads.map((r) => r.userId));
					}
					events.stateless(payload);
				},
			});
			lastProvider = link.provider;
			return link;
		},
	};
	// Read at once: a test takes `doc` as the device's whole state at any moment (a reload).
	const store = new MemoryDocumentStore({ immediate: true });
	if (options.doc) store.logs.set(roomId, [Y.encodeStateAsUpdate(options.doc)]);
	const sync = new RoomSync({
		roomId,
		userId,
		transport,
		store,
		meta: new MemoryMeta(),
		history: options.history ?? noHistory,
	});
	const ackedAt = new Map<string, number>();
	sync.subscribe({
		acked: (ids) => {
			for (const id of ids) if (!ackedAt.has(id)) ackedAt.set(id, Date.now());
		},
	});
	const map = () => sync.doc.getMap<RoomEvent>(messagesMapName);
	const events = () => [...map().values()];
	const provider = () => {
		const link = sync.link;
		return link instanceof HocuspocusLink ? link.provider : (lastProvider as HocuspocusProvider);
	};
	const stamp = <E extends NewEvent>(fields: E) =>
		({
			...fields,
			clientMsgId: randomUUID(),
			senderId: userId,
			createdAt: new Date().toISOString(),
		}) as RoomEvent;
	return {
		sync,
		get doc() {
			return sync.doc;
		},
		get provider() {
			return provider();
		},
		socket,
		authFailure,
		send(content, senderId = userId) {
			const event: MessageEvent = { ...(stamp({ kind: 'message', content }) as MessageEvent), senderId };
			sync.write(event);
			return event;
		},
		write(fields) {
			const event = stamp(fields);
			sync.write(event);
			return event;
		},
		force(fields) {
			const event = stamp(fields);
			sync.doc.transact(() => map().set(event.clientMsgId, event), 'forced');
			return event;
		},
		messages: () => events().filter((e): e is MessageEvent => e.kind === 'message'),
		events,
		acked: sync.acked,
		ackedAt,
		reads,
		readMessages,
		read: (position) => sync.link?.sendStateless(JSON.stringify({ type: 'read', position })),
		synced: (timeoutMs = 10_000) =>
			waitFor(
				() => !!sync.link?.isSynced && !provider().hasUnsyncedChanges && sync.pendingCount === 0,
				timeoutMs,
				'every own event to be acknowledged',
			),
		destroy() {
			void sync.close();
			socket.destroy();
		},
	};
}

export async function waitFor(
	check: () => boolean | Promise<boolean>,
	timeoutMs = 10_000,
	what = 'condition',
) {
	const deadline = Date.now() + timeoutMs;
	while (Date.now() < deadline) {
		if (await check()) return;
		await new Promise((r) => setTimeout(r, 25));
	}
	throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * Ana and Ben, freshly registered, in a group room of their own, each with a client that is connected and
 * synced (Ben's to `bensNode`, another node of the same cluster, when given). The clients go into `clients`, for
 * the caller to destroy.
 */
export async function twoMembersConnected(
	server: {
		wsUrl: string;
		api: {
			register(prefix: string): Promise<{ user: { id: string; name: string }; accessToken: string }>;
			createGroup(token: string, memberIds: string[]): Promise<{ id: string }>;
		};
	},
	clients: TestClient[],
	bensNode: { wsUrl: string } = server,
) {
	const ana = await server.api.register('ana');
	const ben = await server.api.register('ben');
	const room = await server.api.createGroup(ana.accessToken, [ben.user.id]);
	const a = connect(server.wsUrl, room.id, ana.accessToken, ana.user.id);
	const b = connect(bensNode.wsUrl, room.id, ben.accessToken, ben.user.id);
	clients.push(a, b);
	await Promise.all([a.synced(), b.synced()]);
	return { ana, ben, room, a, b };
}

/**
 * Writes `count` messages (`<label> 0000`, `<label> 0001`, …) in transactions of 100, waits until all are
 * acknowledged, and returns them in display order (a transaction's messages share a millisecond, so that is not
 * the order of writing).
 */
export async function writeMany(
	writer: TestClient,
	count: number,
	label = 'message',
): Promise<MessageEvent[]> {
	const sent: MessageEvent[] = [];
	for (let start = 0; start < count; start += 100)
		writer.doc.transact(() => {
			for (let i = start; i < Math.min(start + 100, count); i++)
				sent.push(writer.send(`${label} ${String(i).padStart(4, '0')}`));
		});
	await writer.synced(120_000);
	return sent.sort(compareEvents);
}

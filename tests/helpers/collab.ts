import { randomUUID } from 'node:crypto';
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import * as Y from 'yjs';
import { compareEvents, type MessageEvent, type RoomEvent } from '../../src/lib/protocol/events.ts';
import { pendingQuestions, serverStateless } from '../../src/lib/protocol/stateless.ts';

/** An event without what the writer fills in (its id, sender and time). */
type NewEvent = RoomEvent extends infer E
	? E extends RoomEvent
		? Omit<E, 'clientMsgId' | 'senderId' | 'createdAt'>
		: never
	: never;

export interface TestClient {
	doc: Y.Doc;
	provider: HocuspocusProvider;
	socket: HocuspocusProviderWebsocket;
	/** Resolves with the reason if the server refuses authentication. */
	authFailure: Promise<string>;
	/** Writes a message event the way the real client does: one new key, one transaction. */
	send(content: string, senderId?: string): MessageEvent;
	/** Writes any event (an edit, a delete, a reaction) as this user, now. */
	write(fields: NewEvent): RoomEvent;
	/** The message events (kind `message`) of the room. */
	messages(): MessageEvent[];
	/** Every event of the room, of every kind. */
	events(): RoomEvent[];
	/** Resolves when every message sent so far is acknowledged by the server as durable. */
	synced(timeoutMs?: number): Promise<void>;
	/** clientMsgIds the server acknowledged as durable. */
	acked: Set<string>;
	/** When each acknowledgement arrived (Date.now()). */
	ackedAt: Map<string, number>;
	/** Members' read positions as the server last reported them, by user id. */
	reads: Map<string, { at: string; clientMsgId: string }>;
	/** Reports a read position (a `read` stateless message). */
	read(position: { at: string; clientMsgId: string } | null): void;
	destroy(): void;
}

/**
 * A real @hocuspocus/provider client with its own Y.Doc, connected to room:<roomId>. Given a `doc` (a device's
 * stored copy), its own messages in it count as sent and wait for their acks like new ones.
 */
export function connect(
	wsUrl: string,
	roomId: string,
	/** A function is asked again on every (re)connect and whenever the server asks for a fresh token. */
	token: string | null | (() => Promise<string>),
	userId = '',
	options: { doc?: Y.Doc } = {},
): TestClient {
	const doc = options.doc ?? new Y.Doc();
	const socket = new HocuspocusProviderWebsocket({ url: wsUrl, delay: 100, maxDelay: 1_000, minDelay: 100 });
	let failed!: (reason: string) => void;
	const authFailure = new Promise<string>((resolve) => (failed = resolve));
	const provider = new HocuspocusProvider({
		websocketProvider: socket,
		name: `room:${roomId}`,
		document: doc,
		token,
		onAuthenticationFailed: ({ reason }) => failed(reason),
	});
	// As the real client does (protocol.md section 5): a login refused for a passing reason (the server's database
	// is away, too many logins) is tried again after 1 s, 2 s, then every 4 s.
	let retryMs = 1_000;
	let destroyed = false;
	provider.on('authenticationFailed', ({ reason }: { reason: string }) => {
		const name = reason.split(':')[0];
		if (name !== 'storage-unavailable' && name !== 'rate-limited') return;
		setTimeout(() => {
			if (!destroyed) void provider.onOpen(new Event('open'));
		}, retryMs);
		retryMs = Math.min(retryMs * 2, 4_000);
	});
	provider.on('authenticated', () => (retryMs = 1_000));
	const acked = new Set<string>();
	const ackedAt = new Map<string, number>();
	const sent = new Set<string>();
	const reads = new Map<string, { at: string; clientMsgId: string }>();
	provider.on('stateless', ({ payload }: { payload: string }) => {
		const message = serverStateless.parse(JSON.parse(payload));
		if (message.type === 'ack')
			for (const id of message.clientMsgIds) {
				if (!acked.has(id)) ackedAt.set(id, Date.now());
				acked.add(id);
			}
		if (message.type === 'reads')
			for (const { userId, ...position } of message.reads) reads.set(userId, position);
	});
	const messages = doc.getMap<MessageEvent>('messages');
	for (const [id, event] of messages) if (userId && event.senderId === userId) sent.add(id);
	// As the real client does (protocol.md section 6): after each sync and each (re)authentication, and then
	// every 2 s while any remain, ask about what was never acked.
	const ask = () => {
		const unacked = [...sent].filter((id) => !acked.has(id) && messages.has(id));
		for (const question of pendingQuestions(unacked)) provider.sendStateless(question);
	};
	provider.on('synced', ask);
	provider.on('authenticated', ask);
	const asking = setInterval(() => {
		if (provider.isAuthenticated && [...sent].some((id) => !acked.has(id))) ask();
	}, 2_000);
	provider.attach();
	return {
		doc,
		provider,
		socket,
		authFailure,
		send(content, senderId = userId) {
			const event: MessageEvent = {
				kind: 'message',
				clientMsgId: randomUUID(),
				senderId,
				content,
				createdAt: new Date().toISOString(),
			};
			doc.transact(() => messages.set(event.clientMsgId, event), 'local');
			sent.add(event.clientMsgId);
			return event;
		},
		write(fields) {
			const event = {
				...fields,
				clientMsgId: randomUUID(),
				senderId: userId,
				createdAt: new Date().toISOString(),
			} as RoomEvent;
			doc.transact(() => messages.set(event.clientMsgId, event as unknown as MessageEvent), 'local');
			sent.add(event.clientMsgId);
			return event;
		},
		messages: () => [...messages.values()].filter((e) => e.kind === 'message'),
		events: () => [...messages.values()] as RoomEvent[],
		acked,
		ackedAt,
		reads,
		read: (position) => provider.sendStateless(JSON.stringify({ type: 'read', position })),
		synced: (timeoutMs = 10_000) =>
			waitFor(
				() => provider.isSynced && !provider.hasUnsyncedChanges && [...sent].every((id) => acked.has(id)),
				timeoutMs,
				'every sent message to be acknowledged',
			),
		destroy() {
			destroyed = true;
			clearInterval(asking);
			provider.destroy();
			socket.destroy();
			doc.destroy();
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
 * synced. The clients go into `clients`, for the caller to destroy.
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
) {
	const ana = await server.api.register('ana');
	const ben = await server.api.register('ben');
	const room = await server.api.createGroup(ana.accessToken, [ben.user.id]);
	const a = connect(server.wsUrl, room.id, ana.accessToken, ana.user.id);
	const b = connect(server.wsUrl, room.id, ben.accessToken, ben.user.id);
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

import { HocuspocusProvider } from '@hocuspocus/provider';
import * as Y from 'yjs';
import { collabRejections } from '../protocol/errors.ts';
import {
	readUserChannelMessage,
	sessionEndFromClose,
	userDocumentName,
	type SessionEndReason,
	type RoomActivity,
	type RoomState,
	type UserChannelMessage,
} from '../protocol/user-channel.ts';
import { PROTOCOL_VERSION } from '../protocol/version.ts';
import { connection } from './connection.svelte.ts';
import { serverConfig } from './server-config.svelte.ts';
import { session } from './session.svelte.ts';

export { sessionEndFromClose, type SessionEndReason } from '../protocol/user-channel.ts';
export type NotifyMessage = Extract<UserChannelMessage, { type: 'notify' }>;
export type RoomRemovedMessage = Extract<UserChannelMessage, { type: 'room-removed' }>;

/**
 * - `closed`: no user signed in (or signed out);
 * - `connecting`: opened, waiting for the server's `state` (first connect, or after any drop);
 * - `live`: the `state` of this connection arrived: the room list is the server's, and changes arrive as they happen.
 */
export type UserChannelStatus = 'closed' | 'connecting' | 'live';

/** Where the channel's messages go. The app wires it (rooms.svelte.ts); tests can pass their own. */
export interface UserChannelSink {
	/** The whole list of rooms, after each (re)connect: it replaces what the client held. */
	state(rooms: RoomState[]): void;
	/** One room was added or changed. */
	room(room: RoomState): void;
	/** A room in the list has a new message, or new counts: only those parts changed. */
	activity(change: RoomActivity): void;
	removed(roomId: string, reason: RoomRemovedMessage['reason']): void;
	notify(message: NotifyMessage): void;
	/** Someone sharing a room came online or went offline. */
	presence(userId: string, online: boolean): void;
	/** This session is over; the server closes the socket next. */
	sessionEnded(reason: SessionEndReason | 'unspecified'): void;
}

type Dispatch = {
	[T in UserChannelMessage['type']]: (
		sink: UserChannelSink,
		message: Extract<UserChannelMessage, { type: T }>,
	) => void;
};

/** One entry per message type (STYLE 19): the schema's union and this table change together. */
const dispatch: Dispatch = {
	state: (sink, m) => sink.state(m.rooms),
	room: (sink, m) => sink.room(m.room),
	'room-activity': (sink, m) => sink.activity(m),
	'room-removed': (sink, m) => sink.removed(m.roomId, m.reason),
	notify: (sink, m) => sink.notify(m),
	presence: (sink, m) => sink.presence(m.userId, m.online),
	'session-ended': (sink, m) => sink.sessionEnded(m.reason),
};

/** After a refused authentication, wait this long before trying again (doubling, up to the maximum). */
const RETRY_MIN_MS = 2_000;
const RETRY_MAX_MS = 60_000;

/**
 * The signed-in user's live channel: the read-only, empty document `user:<id>` on the app's shared socket,
 * over which the server tells this device about its rooms (the list, each change, removals), the messages it
 * should hear about, and the end of its session. Every message is checked with the shared schema; unknown
 * ones are for newer clients and are ignored.
 */
class UserChannel {
	status = $state<UserChannelStatus>('closed');
	/** The server's protocol version, from the last `state`. */
	serverVersion = $state<number | null>(null);
	/** The server speaks a newer protocol than this bundle: the user should reload. */
	readonly newerVersion: boolean = $derived(
		this.serverVersion !== null && this.serverVersion > PROTOCOL_VERSION,
	);

	#userId: string | null = null;
	#sink: UserChannelSink | null = null;
	#doc: Y.Doc | null = null;
	#provider: HocuspocusProvider | null = null;
	#retryMs = RETRY_MIN_MS;
	#retryTimer: ReturnType<typeof setTimeout> | undefined;
	/** Whether the channel's own presence beats (see `heartbeat`). */
	#beating = true;

	/** Opens the channel of `userId` (closing another user's first). Idempotent for the same user. */
	open(userId: string, sink: UserChannelSink): void {
		if (this.#userId === userId && this.#provider) {
			this.#sink = sink;
			return;
		}
		this.close();
		this.#userId = userId;
		this.#sink = sink;
		this.#doc = new Y.Doc();
		this.status = 'connecting';
		this.#provider = this.#createProvider(this.#doc, userId);
	}

	/**
	 * The channel's own presence (the empty state every provider has, renewed every 15 s, which the server sends
	 * back) is the socket's heartbeat. It is needed only while no live room is on screen: a live room's own presence
	 * keeps the socket alive both ways. Off, the channel holds `null`, and the server has one renewal fewer a device
	 * every 15 s to take and answer.
	 */
	heartbeat(on: boolean): void {
		this.#beating = on;
		const awareness = this.#provider?.awareness;
		if (awareness && (awareness.getLocalState() !== null) !== on) awareness.setLocalState(on ? {} : null);
	}

	/** Closes the channel (sign-out, or a change of user). */
	close(): void {
		clearTimeout(this.#retryTimer);
		this.#provider?.destroy();
		this.#doc?.destroy();
		this.#provider = null;
		this.#doc = null;
		this.#userId = null;
		this.#sink = null;
		this.status = 'closed';
		this.#retryMs = RETRY_MIN_MS;
	}

	#createProvider(doc: Y.Doc, userId: string): HocuspocusProvider {
		const provider = new HocuspocusProvider({
			websocketProvider: connection.socket,
			name: userDocumentName(userId),
			document: doc,
			// A session of its own, as the rooms have: a replaced provider never receives its successor's answers.
			sessionAwareness: true,
			token: () => session.accessToken(),
		});
		if (!this.#beating) provider.awareness?.setLocalState(null);
		const current = () => provider === this.#provider;
		provider.on('stateless', ({ payload }: { payload: string }) => {
			if (current()) this.#receive(payload);
		});
		provider.on('status', ({ status }: { status: string }) => {
			// Whatever happened while the socket was down comes with the next `state`.
			if (current() && status !== 'connected') this.status = 'connecting';
		});
		provider.on('close', ({ event }: { event: { code: number; reason: string } }) => {
			if (current()) this.#onClose(event.reason ?? '');
		});
		provider.on('authenticationFailed', ({ reason }: { reason: string }) => {
			if (!current()) return;
			const ended = sessionEndFromClose(reason);
			if (ended) this.#sink?.sessionEnded(ended);
			else if (reason.startsWith(collabRejections.outdatedClient.reason)) serverConfig.markOutdated(reason);
			else this.#reopenLater();
		});
		provider.attach();
		return provider;
	}

	#receive(payload: string): void {
		const message = readUserChannelMessage(payload);
		const sink = this.#sink;
		// Not a message this version knows (a newer server's): ignored, as the protocol asks.
		if (!message || !sink) return;
		if (message.type === 'state') {
			this.serverVersion = message.protocolVersion;
			this.status = 'live';
			this.#retryMs = RETRY_MIN_MS;
		}
		(dispatch[message.type] as (sink: UserChannelSink, message: UserChannelMessage) => void)(sink, message);
	}

	#onClose(reason: string): void {
		this.status = this.#provider ? 'connecting' : 'closed';
		const ended = sessionEndFromClose(reason);
		if (ended) {
			this.#sink?.sessionEnded(ended);
			return;
		}
		const name = reason.split(':')[0]?.trim() ?? '';
		// The socket's token ran out before it was renewed: a new provider authenticates again, and the token
		// function refreshes it. Other closes are the socket's own: it reconnects, and the provider with it.
		if (name === collabRejections.tokenExpired.reason) this.#reopenLater(0);
	}

	/** Replaces the provider after `delayMs` (backing off while the server keeps refusing). */
	#reopenLater(delayMs = this.#retryMs): void {
		const provider = this.#provider;
		const userId = this.#userId;
		if (!provider || !userId) return;
		this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
		clearTimeout(this.#retryTimer);
		this.#retryTimer = setTimeout(() => {
			if (provider !== this.#provider || !this.#doc) return;
			provider.destroy();
			this.#provider = this.#createProvider(this.#doc, userId);
		}, delayMs);
	}
}

/** The one user channel of this tab. */
export const userChannel = new UserChannel();

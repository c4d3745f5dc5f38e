import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import * as Y from 'yjs';
import {
	userChannelMessage,
	userDocumentName,
	type RoomState,
	type UserChannelMessage,
} from '../../src/lib/protocol/user-channel.ts';
import { PROTOCOL_PARAMETER, PROTOCOL_VERSION } from '../../src/lib/protocol/version.ts';

export interface ChannelClient {
	provider: HocuspocusProvider;
	socket: HocuspocusProviderWebsocket;
	/** Every message received, in order (each one checked against the shared schema). */
	received: UserChannelMessage[];
	/** The rooms as the messages so far describe them, newest activity first. */
	rooms(): RoomState[];
	room(roomId: string): RoomState | undefined;
	/** The `notify` messages so far. */
	notifications(): Extract<UserChannelMessage, { type: 'notify' }>[];
	authFailure: Promise<string>;
	destroy(): void;
}

/**
 * A client of the user channel `user:<userId>`, as the app opens it, that applies what the server says.
 * `protocol`: the version it says it follows (`?protocol=`), as the app does; null says none, as a bot may.
 * `alongside`: the socket of the device's rooms, which the app shares with its channel (its URL says the version;
 * it stays open when the channel is destroyed).
 */
export function openChannel(
	wsUrl: string,
	userId: string,
	token: string | (() => Promise<string>),
	protocol: number | null = PROTOCOL_VERSION,
	alongside?: HocuspocusProviderWebsocket,
): ChannelClient {
	const url = protocol === null ? wsUrl : `${wsUrl}?${PROTOCOL_PARAMETER}=${protocol}`;
	const socket =
		alongside ?? new HocuspocusProviderWebsocket({ url, delay: 100, maxDelay: 1_000, minDelay: 100 });
	let failed!: (reason: string) => void;
	const authFailure = new Promise<string>((resolve) => (failed = resolve));
	const provider = new HocuspocusProvider({
		websocketProvider: socket,
		name: userDocumentName(userId),
		document: new Y.Doc(),
		token,
		onAuthenticationFailed: ({ reason }) => failed(reason),
	});
	const received: UserChannelMessage[] = [];
	const state = new Map<string, RoomState>();
	provider.on('stateless', ({ payload }: { payload: string }) => {
		const message = userChannelMessage.parse(JSON.parse(payload));
		received.push(message);
		if (message.type === 'state') {
			state.clear();
			for (const room of message.rooms) state.set(room.id, room);
		} else if (message.type === 'room') state.set(message.room.id, message.room);
		else if (message.type === 'room-activity') {
			const { roomId, lastMessage, activityAt, unread, mentions } = message;
			const room = state.get(roomId);
			if (room) state.set(roomId, { ...room, lastMessage, activityAt, unread, mentions });
		} else if (message.type === 'room-removed') state.delete(message.roomId);
	});
	provider.attach();
	return {
		provider,
		socket,
		received,
		rooms: () => [...state.values()].sort((a, b) => Date.parse(b.activityAt) - Date.parse(a.activityAt)),
		room: (roomId) => state.get(roomId),
		notifications: () => received.filter((m) => m.type === 'notify'),
		authFailure,
		destroy() {
			provider.destroy();
			if (!alongside) socket.destroy();
		},
	};
}

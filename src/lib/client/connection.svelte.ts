import { HocuspocusProviderWebsocket, WebSocketStatus } from '@hocuspocus/provider';
import { SvelteSet } from 'svelte/reactivity';
import { PROTOCOL_PARAMETER, PROTOCOL_VERSION } from '../protocol/version.ts';

/** What one open room reports to the global banner. */
export interface SyncSource {
	/** The room's document is connected and has the server's copy. */
	readonly synced: boolean;
	/** Own messages not yet acknowledged by the server. */
	readonly pendingCount: number;
}

export type ConnectionStatus = 'offline' | 'reconnecting' | 'syncing' | 'synced';

/**
 * The app's one WebSocket to /collab, shared by every open room (Hocuspocus multiplexes documents on it), and
 * the global connection status shown in the banner:
 * - `offline`: the browser has no network, or the socket is down and not currently connecting;
 * - `reconnecting`: the socket is (re)connecting, or a room has not finished its sync handshake;
 * - `syncing`: connected, but own messages are still waiting for the server's acknowledgement;
 * - `synced`: connected, every open room synced and every own message acknowledged.
 */
class Connection {
	online = $state(typeof navigator === 'undefined' ? true : navigator.onLine);
	socketStatus = $state<`${WebSocketStatus}`>(WebSocketStatus.Disconnected);

	readonly #sources = new SvelteSet<SyncSource>();
	#socket: HocuspocusProviderWebsocket | null = null;
	#listening = false;

	readonly status: ConnectionStatus = $derived.by(() => {
		if (!this.online) return 'offline';
		// No room open means no socket to watch: nothing is waiting to be sent, so there is nothing to warn about.
		if (this.#sources.size === 0) return 'synced';
		if (this.socketStatus !== WebSocketStatus.Connected) {
			return this.socketStatus === WebSocketStatus.Connecting ? 'reconnecting' : 'offline';
		}
		let pending = 0;
		for (const source of this.#sources) {
			if (!source.synced) return 'reconnecting';
			pending += source.pendingCount;
		}
		return pending > 0 ? 'syncing' : 'synced';
	});

	readonly pendingCount: number = $derived.by(() => {
		let pending = 0;
		for (const source of this.#sources) pending += source.pendingCount;
		return pending;
	});

	/** The shared socket, created on first use. */
	get socket(): HocuspocusProviderWebsocket {
		this.#listen();
		this.#socket ??= this.#createSocket();
		return this.#socket;
	}

	track(source: SyncSource): () => void {
		this.#sources.add(source);
		return () => this.#sources.delete(source);
	}

	/** Closes the socket (sign-out). The next `socket` access opens a new one. */
	close(): void {
		this.#socket?.destroy();
		this.#socket = null;
		this.socketStatus = WebSocketStatus.Disconnected;
	}

	#createSocket(): HocuspocusProviderWebsocket {
		const socket = new HocuspocusProviderWebsocket({
			// The version this client was built for: a server that no longer accepts it says so (outdated-client).
			url: `${location.origin.replace(/^http/, 'ws')}/collab?${PROTOCOL_PARAMETER}=${PROTOCOL_VERSION}`,
			// Offline, every attempt would fail and log; the `online` event connects instead.
			autoConnect: navigator.onLine,
			// After an outage ends, every client is back within a few seconds (with the provider's jitter).
			maxDelay: 4_000,
			onStatus: ({ status }) => {
				this.socketStatus = status;
			},
		});
		return socket;
	}

	#listen(): void {
		if (this.#listening || typeof window === 'undefined') return;
		this.#listening = true;
		window.addEventListener('online', () => {
			this.online = true;
			// Skip the backoff: the network just came back.
			void this.#socket?.connect();
		});
		window.addEventListener('offline', () => {
			this.online = false;
			// A socket can look open for up to 30 s after the network went (no close frame arrives): drop it now,
			// so the rooms show "offline" and the next connect re-runs the sync handshake.
			this.#socket?.disconnect();
		});
	}
}

export const connection = new Connection();

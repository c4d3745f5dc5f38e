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

/** How long a socket closed while offline may take to report its close once the network is back. */
const CLOSE_WAIT_MS = 3_000;

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
	/**
	 * Going offline closed a connected socket, and its close event has not come: a close cannot finish without the
	 * network, so the browser may report it only after the network is back, even after the `online` event.
	 */
	#closePending = false;

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
		this.#closePending = false;
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
				if (status !== WebSocketStatus.Disconnected || !this.#closePending) return;
				this.#closePending = false;
				// The close that going offline asked for, reported after the network came back: connect now (once the
				// provider has finished handling the close), or the socket would stay down until the next reload.
				if (this.online) setTimeout(() => void this.#socket?.connect(), 0);
			},
		});
		return socket;
	}

	#listen(): void {
		if (this.#listening || typeof window === 'undefined') return;
		this.#listening = true;
		window.addEventListener('online', () => {
			this.online = true;
			// A socket still closing reads as connected, and connect() would do nothing: the close's status
			// change connects it instead (onStatus above). A close the browser has not finished within a few
			// seconds of the network's return is taken as done (the provider drops the old socket's listeners).
			if (this.#closePending) {
				setTimeout(() => {
					const socket = this.#socket;
					if (!this.#closePending || !this.online || !socket) return;
					// The close event the browser owes, on the old socket: the provider and every room on it handle it.
					socket.webSocket?.dispatchEvent(
						new CloseEvent('close', { code: 1006, reason: 'closed while offline' }),
					);
				}, CLOSE_WAIT_MS);
				return;
			}
			// Skip the backoff: the network just came back.
			void this.#socket?.connect();
		});
		window.addEventListener('offline', () => {
			this.online = false;
			// A socket can look open for up to 30 s after the network went (no close frame arrives): drop it now,
			// so the rooms show "offline" and the next connect re-runs the sync handshake.
			if (this.#socket?.status === WebSocketStatus.Connected) this.#closePending = true;
			this.#socket?.disconnect();
		});
	}
}

export const connection = new Connection();

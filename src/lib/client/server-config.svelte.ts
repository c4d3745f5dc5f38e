import { serverConfigResponse, type ServerConfigResponse } from '../protocol/config.ts';
import { compileFilter, type ContentFilter } from '../protocol/moderation.ts';
import { PROTOCOL_VERSION } from '../protocol/version.ts';
import { request } from './api.ts';

const STORAGE_KEY = 'chat.serverConfig';
/** How often an open app asks again (an operator may change the filter; a tab stays open for days). */
const REFRESH_INTERVAL_MS = 30 * 60_000;

/**
 * What the server told us to apply before writing (`GET /api/config`): its content filter, and its protocol
 * version. The last answer is kept in localStorage, so the app filters the same way when it starts offline.
 */
class ServerConfig {
	/** The content filter every written text goes through (room.svelte.ts) before the server sees it. */
	filter: ContentFilter = $state.raw(compileFilter({ mode: 'off', words: [] }));
	/** Rooms one socket may have open on the server (DOCUMENTS_PER_CONNECTION; 100 until it says). */
	documentsPerConnection = $state(100);
	/** The largest file the server takes (ATTACHMENT_MAX_BYTES; 25 MB until it says): checked before uploading. */
	attachmentMaxBytes = $state(25 * 1024 * 1024);
	/**
	 * Messages a room's live document keeps before the server trims older ones into history (ROOM_WINDOW_MESSAGES;
	 * until it says, its smallest allowed value, so that "Show earlier messages" is never hidden wrongly).
	 */
	roomWindowMessages = $state(100);
	/** Set when this app is older than the server accepts or speaks: the user should reload (UpdateBar). */
	outdated = $state<string | null>(null);

	#started = false;

	/** Loads the kept answer, then asks the server now and every REFRESH_INTERVAL_MS. Later calls do nothing. */
	start(): void {
		if (this.#started || typeof window === 'undefined') return;
		this.#started = true;
		try {
			const kept = serverConfigResponse.safeParse(JSON.parse(localStorage.getItem(STORAGE_KEY) ?? 'null'));
			if (kept.success) this.#apply(kept.data);
		} catch {
			// Unreadable: the server's answer replaces it.
		}
		void this.refresh();
		setInterval(() => void this.refresh(), REFRESH_INTERVAL_MS);
		window.addEventListener('online', () => void this.refresh());
	}

	/** Asks the server; offline or on a bad answer the kept configuration stays. */
	async refresh(): Promise<void> {
		// Offline, the request would only fail (and log); the `online` event asks again.
		if (!navigator.onLine) return;
		try {
			const config = await request('/api/config', { schema: serverConfigResponse, auth: false });
			this.#apply(config);
			localStorage.setItem(STORAGE_KEY, JSON.stringify(config));
		} catch {
			// Offline or a server without this endpoint: keep what we have.
		}
	}

	/** The server refused this app's protocol version (`outdated-client`). */
	markOutdated(reason: string): void {
		console.warn(`this app is too old for the server: ${reason}`);
		this.outdated = 'This version of Chat is too old for the server';
	}

	#apply(config: ServerConfigResponse): void {
		this.filter = compileFilter(config.contentFilter);
		this.documentsPerConnection = config.limits.documentsPerConnection ?? this.documentsPerConnection;
		this.attachmentMaxBytes = config.limits.attachmentMaxBytes ?? this.attachmentMaxBytes;
		this.roomWindowMessages = config.limits.roomWindowMessages ?? this.roomWindowMessages;
		if (config.protocolVersion > PROTOCOL_VERSION) this.outdated = 'A newer version of Chat is available';
	}
}

export const serverConfig = new ServerConfig();

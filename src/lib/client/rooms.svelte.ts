import { SvelteMap } from 'svelte/reactivity';
import { ApiError, roomsApi } from './api.ts';
import { connection } from './connection.svelte.ts';
import { RoomStore } from './room.svelte.ts';
import type { Profile, RoomSummary } from './schemas.ts';
import { session } from './session.svelte.ts';
import { MetaStore } from './store.ts';
import { localSnippet, searchWords } from './format.ts';

/** Rooms kept open (document + provider) at once: enough for a team, well under the server's per-socket cap. */
const MAX_OPEN_ROOMS = 50;
/** New rooms (someone started a chat with you) have no push channel yet: the list is polled while visible. */
const POLL_MS = 15_000;

/**
 * The signed-in user's rooms: the list (cached on the device, refreshed from the API) and one `RoomStore` per
 * room. Rooms are kept open while the app runs, so the list shows live last messages, unread counts and
 * presence, and messages written offline in any room go out on reconnect without revisiting it.
 */
/** A search result found on this device (the server's have the same fields and more). */
export interface LocalResult {
	roomId: string;
	clientMsgId: string;
	senderId: string;
	createdAt: string;
	snippet: string;
}

class Rooms {
	list = $state.raw<RoomSummary[]>([]);
	/** The cached list has been read (the page can render without waiting for the network). */
	loaded = $state(false);
	/** A problem fetching the list, for the page to show. */
	error = $state<string | null>(null);
	/** The account's data is open: `room()` can open rooms. */
	ready = $state(false);

	readonly #stores = new SvelteMap<string, RoomStore>();
	#meta: MetaStore | null = null;
	#user: Profile | null = null;
	#poll: ReturnType<typeof setInterval> | undefined;
	#refreshing: Promise<void> | null = null;
	#listeners: AbortController | null = null;

	/** Opens the account's data. Called when a user is signed in; a different user first stops the previous. */
	async start(user: Profile): Promise<void> {
		if (this.#user?.id === user.id) return;
		await this.stop();
		this.#user = user;
		const meta = new MetaStore(user.id);
		this.#meta = meta;
		try {
			const cached = await meta.rooms();
			if (this.#meta !== meta) return;
			this.list = cached;
		} catch (error) {
			console.warn('cannot read the cached room list', error);
		}
		this.loaded = true;
		this.ready = true;
		this.#openAll();
		void this.refresh();
		this.#poll = setInterval(() => {
			if (document.visibilityState === 'visible' && navigator.onLine) void this.refresh();
		}, POLL_MS);
		this.#listeners = new AbortController();
		window.addEventListener('online', () => void this.refresh(), { signal: this.#listeners.signal });
		this.#exposeForTests();
	}

	/** Closes every room and the metadata database (sign-out or a change of user). */
	async stop(): Promise<void> {
		clearInterval(this.#poll);
		this.#listeners?.abort();
		for (const store of this.#stores.values()) store.destroy();
		this.#stores.clear();
		connection.close();
		const meta = this.#meta;
		this.#meta = null;
		this.#user = null;
		this.list = [];
		this.loaded = false;
		this.ready = false;
		this.error = null;
		await meta?.close();
	}

	/**
	 * The room's store, opened on first use. A deep link can name a room the list does not show yet (someone just
	 * started a chat with you): the list is then refreshed for its name and members.
	 */
	room(roomId: string): RoomStore | null {
		if (!this.#user || !this.#meta) return null;
		let store = this.#stores.get(roomId);
		if (!store) {
			store = new RoomStore(roomId, this.#user, this.#meta);
			this.#stores.set(roomId, store);
			if (this.loaded && !this.summary(roomId)) void this.refresh();
		}
		return store;
	}

	/** An already open room, without opening it (for the list). */
	peek(roomId: string): RoomStore | undefined {
		return this.#stores.get(roomId);
	}

	/**
	 * Search on this device: the messages of the rooms it holds that contain every word (deleted ones never),
	 * newest first, with snippets marked like the server's.
	 */
	searchLocal(query: string, limit = 50): LocalResult[] {
		const words = searchWords(query);
		if (words.length === 0) return [];
		const results: LocalResult[] = [];
		for (const store of this.#stores.values()) {
			for (const m of store.messages) {
				if (m.deleted || m.status === 'failed') continue;
				const text = m.content.toLowerCase();
				if (!words.every((w) => text.includes(w))) continue;
				results.push({
					roomId: store.roomId,
					clientMsgId: m.clientMsgId,
					senderId: m.senderId,
					createdAt: m.createdAt,
					snippet: localSnippet(m.content, words),
				});
			}
		}
		return results.sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt)).slice(0, limit);
	}

	summary(roomId: string): RoomSummary | undefined {
		return this.list.find((r) => r.id === roomId);
	}

	/** Fetches the room list; offline keeps the cached one. */
	refresh(): Promise<void> {
		this.#refreshing ??= this.#refresh().finally(() => {
			this.#refreshing = null;
		});
		return this.#refreshing;
	}

	async #refresh(): Promise<void> {
		const meta = this.#meta;
		if (!navigator.onLine) return;
		if (!meta || session.tokenless) {
			// No token yet (offline start): the cached list stays; a later poll or `online` retries.
			if (meta && navigator.onLine) await session.accessToken().catch(() => undefined);
			if (!meta || session.tokenless) return;
		}
		try {
			const list = await roomsApi.list();
			if (this.#meta !== meta) return;
			this.list = list;
			this.error = null;
			await meta.saveRooms(list);
			this.#openAll();
		} catch (error) {
			if (error instanceof ApiError && error.isNetwork) return;
			this.error = error instanceof Error ? error.message : String(error);
		}
	}

	/** Creates a group with the given members; returns its id. */
	async createGroup(name: string, memberIds: string[]): Promise<string> {
		const room = await roomsApi.create({ name, isGroup: true, memberIds });
		await this.#adopt(room);
		return room.id;
	}

	/** Opens (or creates) the 1:1 room with another user; returns its id. */
	async startChat(userId: string): Promise<string> {
		const room = await roomsApi.create({ isGroup: false, memberIds: [userId] });
		await this.#adopt(room);
		return room.id;
	}

	async addMember(roomId: string, userId: string): Promise<void> {
		const room = await roomsApi.addMember(roomId, userId);
		await this.#adopt(room);
	}

	/** Merges a room the API just returned into the list (keeping its last message) and saves the list. */
	async #adopt(room: Omit<RoomSummary, 'lastMessage'>): Promise<void> {
		const existing = this.summary(room.id);
		const merged: RoomSummary = { ...room, lastMessage: existing?.lastMessage ?? null };
		this.list = existing ? this.list.map((r) => (r.id === room.id ? merged : r)) : [merged, ...this.list];
		await this.#meta?.saveRooms(this.list);
		this.#openAll();
	}

	#openAll(): void {
		for (const room of this.list.slice(0, MAX_OPEN_ROOMS)) this.room(room.id);
	}

	/**
	 * End-to-end tests inject an update the server refuses through this handle (issue 3, check 5). It exposes
	 * only what the signed-in user can already do from the console with their own data.
	 */
	#exposeForTests(): void {
		(globalThis as { __chatDebug?: unknown }).__chatDebug = {
			roomDoc: (roomId: string) => this.#stores.get(roomId)?.debugDoc ?? null,
			roomProvider: (roomId: string) => this.#stores.get(roomId)?.debugProvider ?? null,
		};
	}
}

export const rooms = new Rooms();

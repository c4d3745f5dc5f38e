import { SvelteMap } from 'svelte/reactivity';
import type { Role } from '../protocol/api.ts';
import { roomState, type NotifyLevel } from '../protocol/user-channel.ts';
import { ApiError, roomsApi } from './api.ts';
import { connection } from './connection.svelte.ts';
import { notifications } from './notifications.svelte.ts';
import { RoomStore } from './room.svelte.ts';
import type { Profile, RoomSummary } from './schemas.ts';
import { session } from './session.svelte.ts';
import {
	MetaStore,
	deleteDatabase,
	roomDatabaseName,
	type RemovalReason,
	type RemovedRoom,
} from './store.ts';
import { removalText, searchMessages, sortRooms, type LocalResult, type RoomAccess } from './room-list.ts';
import { serverConfig } from './server-config.svelte.ts';
import { userChannel, type UserChannelSink } from './user-channel.svelte.ts';

/**
 * Rooms kept open (document + provider) at once: enough for a team, and under the server's per-socket cap
 * (`documentsPerConnection` of `GET /api/config`), which the user channel shares.
 */
const MAX_OPEN_ROOMS = 50;
/** When the user channel has not delivered the list this long after a start or a reconnect, ask the API. */
const FALLBACK_AFTER_MS = 2_000;

export { removalText, type LocalResult, type RoomAccess } from './room-list.ts';

/**
 * The signed-in user's rooms: the list (cached on the device, kept live by the user channel) and one `RoomStore`
 * per room. Rooms are kept open while the app runs, so the list shows live last messages and presence, and
 * messages written offline in any room go out on reconnect without revisiting it.
 *
 * The user channel is the source of the list: its `state` replaces it after every (re)connect and `room` /
 * `room-removed` change one room. The API's list is only a fallback while the channel is not connected.
 */
class Rooms {
	/** The rooms the user is in, most recently active first. */
	list = $state.raw<RoomSummary[]>([]);
	/** Rooms the user is no longer in, shown read-only until dismissed. */
	removed = $state.raw<RemovedRoom[]>([]);
	/** The cached list has been read (the page can render without waiting for the network). */
	loaded = $state(false);
	/** A problem fetching the list, for the page to show. */
	error = $state<string | null>(null);
	/** The account's data is open: `room()` can open rooms. */
	ready = $state(false);
	/** The room whose page is open in this tab (set by the page). */
	viewing = $state<string | null>(null);

	/** Every room of the list page: the current ones, then those the user was removed from. */
	readonly shown: { room: RoomSummary; removal: RemovalReason | null }[] = $derived([
		...this.list.map((room) => ({ room, removal: null })),
		...this.removed.map(({ room, reason }) => ({ room, removal: reason })),
	]);

	/** Unread messages over every room: the tab title shows it. */
	readonly unreadTotal: number = $derived(this.list.reduce((sum, room) => sum + this.unread(room), 0));

	readonly #stores = new SvelteMap<string, RoomStore>();
	/** Rooms not in the list that the server is being asked about, or that it said are not the user's. */
	readonly #checked = new SvelteMap<string, 'checking' | 'unknown'>();
	#meta: MetaStore | null = null;
	#user: Profile | null = null;
	#refreshing: Promise<void> | null = null;
	#listeners: AbortController | null = null;
	#fallbackTimer: ReturnType<typeof setTimeout> | undefined;
	/** Counts the channel's changes: an API answer older than one of them is dropped. */
	#generation = 0;

	/** Opens the account's data. Called when a user is signed in; a different user first stops the previous. */
	async start(user: Profile): Promise<void> {
		if (this.#user?.id === user.id) return;
		await this.stop();
		this.#user = user;
		const meta = new MetaStore(user.id);
		this.#meta = meta;
		let stale = false;
		try {
			const [cached, removed] = await Promise.all([meta.rooms(), meta.removedRooms()]);
			if (this.#meta !== meta) return;
			this.list = sortRooms(cached.rooms);
			this.removed = removed;
			stale = cached.stale;
		} catch (error) {
			console.warn('cannot read the cached room list', error);
		}
		this.loaded = true;
		this.ready = true;
		this.#openAll();
		userChannel.open(user.id, this.#sink);
		this.#listeners = new AbortController();
		const { signal } = this.#listeners;
		window.addEventListener('online', () => this.#fallbackSoon(), { signal });
		// A cache an older version wrote is refetched at once; otherwise the channel is given a moment first.
		if (stale) void this.refresh();
		else this.#fallbackSoon();
		// Compiled out of every build but the browser tests' (vite.config.ts defines __TEST_HOOKS__).
		if (__TEST_HOOKS__) this.#exposeForTests();
	}

	/** Closes every room, the user channel and the metadata database (sign-out or a change of user). */
	async stop(): Promise<void> {
		clearTimeout(this.#fallbackTimer);
		this.#listeners?.abort();
		userChannel.close();
		for (const store of this.#stores.values()) store.destroy();
		this.#stores.clear();
		this.#checked.clear();
		connection.close();
		const meta = this.#meta;
		this.#meta = null;
		this.#user = null;
		this.list = [];
		this.removed = [];
		this.loaded = false;
		this.ready = false;
		this.error = null;
		await meta?.close();
	}

	/** What the user channel says, applied to the list (see `UserChannelSink`). */
	readonly #sink: UserChannelSink = {
		state: (list) => {
			this.#generation++;
			for (const room of list) this.#readmit(room.id);
			const ids = new Set(list.map((r) => r.id));
			// Rooms that went while this device was away: shown as removed, their local copy kept until dismissed.
			const gone = this.list.filter((r) => !ids.has(r.id));
			this.removed = [
				...this.removed.filter((r) => !ids.has(r.room.id)),
				...gone.map((room) => ({ room, reason: 'removed' as const })),
			];
			for (const room of gone) this.#stores.get(room.id)?.markRemoved(removalText('removed'));
			this.#setList(list);
			this.error = null;
			if (gone.length > 0) void this.#saveRemoved();
		},
		room: (room) => {
			this.#generation++;
			this.#readmit(room.id);
			this.#upsert(room);
		},
		removed: (roomId, reason) => {
			this.#generation++;
			this.#markRemoved(roomId, reason);
		},
		notify: (message) => {
			if (!this.#user) return;
			notifications.receive(message, {
				selfId: this.#user.id,
				viewingRoomId: this.viewing,
				level: this.summary(message.roomId)?.notify,
			});
		},
		sessionEnded: (reason) => void session.end(reason),
	};

	/**
	 * Unread messages of a room: the server's count, except for the room on screen, whose open store counts
	 * against the read position this device moves as the user reads (the server's count follows a moment later).
	 */
	unread(room: RoomSummary): number {
		const store = this.viewing === room.id ? this.#stores.get(room.id) : undefined;
		return store?.localReady && store.metaReady ? store.unreadCount : room.unread;
	}

	/**
	 * Whether the user may open `roomId` now. While the user channel is live the list is the server's, so a room
	 * missing from it is not the user's (should the channel add it a moment later, the answer follows).
	 */
	access(roomId: string): RoomAccess {
		if (this.list.some((r) => r.id === roomId)) return 'member';
		if (this.removed.some((r) => r.room.id === roomId)) return 'removed';
		return this.#checked.get(roomId) ?? (userChannel.status === 'live' ? 'unknown' : 'checking');
	}

	/**
	 * Decides about a room the list does not have while the channel is not live: it is given the fallback's
	 * moment to connect, then the API is asked. A member gets the room into the list; anyone else `unknown`.
	 */
	async check(roomId: string): Promise<void> {
		if (this.#checked.has(roomId) || this.access(roomId) !== 'checking' || !this.#user) return;
		if (!navigator.onLine) {
			// Not in the list on this device, and nobody to ask.
			this.#checked.set(roomId, 'unknown');
			return;
		}
		this.#checked.set(roomId, 'checking');
		await new Promise((resolve) => setTimeout(resolve, FALLBACK_AFTER_MS));
		if (userChannel.status === 'live' || this.list.some((r) => r.id === roomId)) {
			this.#checked.delete(roomId);
			return;
		}
		try {
			const room = await roomsApi.get(roomId);
			this.#adopt(room);
			this.#checked.delete(roomId);
		} catch (error) {
			// Offline the server cannot say: the room is not on this device either way.
			if (!(error instanceof ApiError) || error.isNetwork || error.status === 404 || error.status === 403)
				this.#checked.set(roomId, 'unknown');
			else {
				this.#checked.delete(roomId);
				throw error;
			}
		}
	}

	/** The room's store, opened on first use; null for a room the user may not open. */
	room(roomId: string): RoomStore | null {
		if (!this.#user || !this.#meta) return null;
		const access = this.access(roomId);
		if (access !== 'member' && access !== 'removed') return null;
		let store = this.#stores.get(roomId);
		if (!store) {
			const removal = this.removalOf(roomId);
			store = new RoomStore(roomId, this.#user, this.#meta, {
				removedNotice: removal ? removalText(removal) : null,
				onRemoved: () => this.#markRemoved(roomId, 'removed'),
			});
			this.#stores.set(roomId, store);
		}
		return store;
	}

	/** An already open room, without opening it (for the list). */
	peek(roomId: string): RoomStore | undefined {
		return this.#stores.get(roomId);
	}

	summary(roomId: string): RoomSummary | undefined {
		return this.list.find((r) => r.id === roomId) ?? this.removed.find((r) => r.room.id === roomId)?.room;
	}

	/** Why the user is no longer in `roomId`, or null while they are. */
	removalOf(roomId: string): RemovalReason | null {
		return this.removed.find((r) => r.room.id === roomId)?.reason ?? null;
	}

	/**
	 * Search on this device: the messages of the rooms it holds that contain every word (deleted ones never),
	 * newest first, with snippets marked like the server's.
	 */
	searchLocal(query: string, limit = 50): LocalResult[] {
		return searchMessages(this.#stores.values(), query, limit);
	}

	/** Fetches the room list from the API (the fallback while the channel is down); offline keeps the cached one. */
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
			// No token yet (offline start): the cached list stays; a later `online` retries.
			if (meta && navigator.onLine) await session.accessToken().catch(() => undefined);
			if (!meta || session.tokenless) return;
		}
		const generation = this.#generation;
		try {
			const list = await roomsApi.list();
			// The channel spoke meanwhile: what it said is newer than this answer.
			if (this.#meta !== meta || this.#generation !== generation) return;
			this.#setList(list);
			this.error = null;
		} catch (error) {
			if (error instanceof ApiError && error.isNetwork) return;
			this.error = error instanceof Error ? error.message : String(error);
		}
	}

	/** Creates a group with the given members; returns its id. */
	async createGroup(name: string, memberIds: string[]): Promise<string> {
		const room = await roomsApi.create({ name, isGroup: true, memberIds });
		this.#adopt(room);
		return room.id;
	}

	/** Opens (or creates) the 1:1 room with another user; returns its id. */
	async startChat(userId: string): Promise<string> {
		const room = await roomsApi.create({ isGroup: false, memberIds: [userId] });
		this.#adopt(room);
		return room.id;
	}

	async addMember(roomId: string, userId: string): Promise<void> {
		this.#adopt(await roomsApi.addMember(roomId, userId));
	}

	/** Removes another member (owners and admins); the channel brings the new member list to every device. */
	async removeMember(roomId: string, userId: string): Promise<void> {
		await roomsApi.removeMember(roomId, userId);
		const room = this.summary(roomId);
		if (room) this.#upsert({ ...room, members: room.members.filter((m) => m.id !== userId) });
	}

	async setRole(roomId: string, userId: string, role: Exclude<Role, 'owner'>): Promise<void> {
		await roomsApi.setRole(roomId, userId, role);
		const room = this.summary(roomId);
		if (room)
			this.#upsert({ ...room, members: room.members.map((m) => (m.id === userId ? { ...m, role } : m)) });
	}

	/** Leaves a group: this device lets go of the room at once (nothing of it is kept). */
	async leave(roomId: string): Promise<void> {
		if (!this.#user) return;
		await roomsApi.removeMember(roomId, this.#user.id);
		this.#markRemoved(roomId, 'left');
		await this.dismiss(roomId);
	}

	/** Sets when this room tells the user about messages; shown at once, undone if the server refuses. */
	async setNotify(roomId: string, level: NotifyLevel): Promise<void> {
		const before = this.list.find((r) => r.id === roomId);
		if (!before) return;
		this.#upsert({ ...before, notify: level });
		try {
			await roomsApi.setNotify(roomId, level);
		} catch (error) {
			const now = this.list.find((r) => r.id === roomId);
			if (now?.notify === level) this.#upsert({ ...now, notify: before.notify });
			throw error;
		}
	}

	/**
	 * Forgets a room the user is no longer in: its store, its document on the device and its cached history,
	 * read state and failures.
	 */
	async dismiss(roomId: string): Promise<void> {
		const user = this.#user;
		const meta = this.#meta;
		if (!user || !meta) return;
		const store = this.#stores.get(roomId);
		this.#stores.delete(roomId);
		this.removed = this.removed.filter((r) => r.room.id !== roomId);
		this.#checked.delete(roomId);
		await store?.close();
		try {
			await Promise.all([
				deleteDatabase(roomDatabaseName(user.id, roomId)),
				meta.forgetRoom(roomId),
				this.#saveRemoved(),
			]);
		} catch (error) {
			console.warn('could not delete the local copy of a room', error);
		}
	}

	#setList(list: RoomSummary[]): void {
		this.list = sortRooms(list);
		// Rooms the user turned out to be in are no longer "unknown".
		for (const room of list) this.#checked.delete(room.id);
		this.#save();
		this.#openAll();
	}

	/** Adds or replaces one room and keeps the list in order. */
	#upsert(room: RoomSummary): void {
		const others = this.list.filter((r) => r.id !== room.id);
		this.list = sortRooms([...others, room]);
		this.#checked.delete(room.id);
		this.#save();
		this.#openAll();
	}

	/** A room the user is back in (added again): its old, read-only store makes way for a live one. */
	#readmit(roomId: string): void {
		if (!this.removed.some((r) => r.room.id === roomId)) return;
		this.removed = this.removed.filter((r) => r.room.id !== roomId);
		const store = this.#stores.get(roomId);
		if (store) {
			this.#stores.delete(roomId);
			store.destroy();
		}
		void this.#saveRemoved();
	}

	#markRemoved(roomId: string, reason: RemovalReason): void {
		const room = this.summary(roomId);
		this.list = this.list.filter((r) => r.id !== roomId);
		if (room) {
			this.removed = [...this.removed.filter((r) => r.room.id !== roomId), { room, reason }];
		} else {
			// Never in the list on this device (a deep link): there is nothing to keep.
			this.#checked.set(roomId, 'unknown');
		}
		this.#stores.get(roomId)?.markRemoved(removalText(reason));
		this.#save();
		void this.#saveRemoved();
	}

	/**
	 * Merges a room the API just returned (a `Room`, or already a `RoomState`) into the list. What the channel
	 * said about it (activity, unread counts, settings) is kept; a room new to this device starts at the top.
	 */
	#adopt(room: { id: string; name: string | null; isGroup: boolean; members: RoomSummary['members'] }): void {
		const full = roomState.safeParse(room);
		const existing = this.summary(room.id);
		const me = room.members.find((m) => m.id === this.#user?.id);
		const merged: RoomSummary = full.success
			? full.data
			: {
					lastMessage: null,
					activityAt: new Date().toISOString(),
					unread: 0,
					mentions: 0,
					notify: 'all',
					...existing,
					id: room.id,
					name: room.name,
					isGroup: room.isGroup,
					members: room.members,
					role: me?.role ?? existing?.role ?? 'member',
				};
		this.#readmit(room.id);
		this.#upsert(merged);
	}

	#save(): void {
		void this.#meta
			?.saveRooms(this.list)
			.catch((error: unknown) => console.warn('cannot cache the room list', error));
	}

	async #saveRemoved(): Promise<void> {
		await this.#meta
			?.saveRemovedRooms(this.removed)
			.catch((error: unknown) => console.warn('cannot cache the removed rooms', error));
	}

	/** Asks the API for the list if the channel has not delivered it shortly (server without it, socket down). */
	#fallbackSoon(): void {
		clearTimeout(this.#fallbackTimer);
		this.#fallbackTimer = setTimeout(() => {
			if (userChannel.status !== 'live') void this.refresh();
		}, FALLBACK_AFTER_MS);
	}

	#openAll(): void {
		const open = Math.min(MAX_OPEN_ROOMS, serverConfig.documentsPerConnection - 1);
		for (const room of this.list.slice(0, open)) this.room(room.id);
	}

	/**
	 * End-to-end tests inject an update the server refuses through this handle (issue 3, check 5). It is not in
	 * production builds.
	 */
	#exposeForTests(): void {
		(globalThis as { __chatDebug?: unknown }).__chatDebug = {
			roomDoc: (roomId: string) => this.#stores.get(roomId)?.debugDoc ?? null,
			roomProvider: (roomId: string) => this.#stores.get(roomId)?.debugProvider ?? null,
		};
	}
}

export const rooms = new Rooms();

/** A page title with the unread total in front: `(3) Chat`, and no prefix at 0. */
export function withUnread(title: string): string {
	const total = rooms.unreadTotal;
	return total > 0 ? `(${total > 999 ? '999+' : total}) ${title}` : title;
}

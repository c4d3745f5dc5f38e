import { SvelteMap } from 'svelte/reactivity';
import type { Role } from '../protocol/api.ts';
import type { NotifyLevel } from '../protocol/user-channel.ts';
import { roomsApi } from './api.ts';
import { AccessChecks } from './room-access.svelte.ts';
import { whenIdle } from './frames.ts';
import { exposeForTests } from './test-hooks.ts';
import { ListFallback } from './room-list-fallback.ts';
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
import {
	afterListState,
	removalText,
	searchMessages,
	sortRooms,
	summaryOf,
	withActivity,
	withNewest,
	countsOf,
	type LocalResult,
	type RoomAccess,
	withPresence,
} from './room-list.ts';
import { openWaitingRooms } from './outgoing-files.ts';
import { serverConfig } from './server-config.svelte.ts';
import { userChannel, type UserChannelSink } from './user-channel.svelte.ts';

/**
 * Rooms kept open (document + provider) at once: enough for a team, and under the server's per-socket cap
 * (`documentsPerConnection` of `GET /api/config`), which the user channel shares.
 */
const MAX_OPEN_ROOMS = 50;

export { removalText, type LocalResult, type RoomAccess } from './room-list.ts';

/**
 * The signed-in user's rooms: the list (cached on the device, kept live by the user channel) and one `RoomStore`
 * per room. Rooms are kept open while the app runs, so the list shows live last messages and presence, and
 * messages written offline in any room go out on reconnect without revisiting it.
 *
 * The user channel is the source of the list: its `state` replaces it after every (re)connect and `room`,
 * `room-activity` and `room-removed` change one room. The API's list is only a fallback while the channel is not connected.
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
	readonly unreadTotal: number = $derived(this.list.reduce((sum, room) => sum + this.counts(room).unread, 0));

	readonly #stores = new SvelteMap<string, RoomStore>();
	readonly #access = new AccessChecks({
		listed: (roomId) => this.list.some((r) => r.id === roomId),
		removed: (roomId) => this.removed.some((r) => r.room.id === roomId),
		adopt: (room) => this.#adopt(room),
	});
	#meta: MetaStore | null = null;
	#user: Profile | null = null;
	#listeners: AbortController | null = null;
	readonly #fallback = new ListFallback({
		active: () => this.#meta !== null,
		apply: (list) => this.#setList(list),
		failed: (message) => (this.error = message),
	});

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
		// The rooms of the list are read once the start has painted: reading them takes the main thread.
		void whenIdle().then(() => this.#meta === meta && this.#openAll());
		userChannel.open(user.id, this.#sink);
		this.#listeners = new AbortController();
		const { signal } = this.#listeners;
		window.addEventListener('online', () => this.#fallback.soon(), { signal });
		// A cache an older version wrote is refetched at once; otherwise the channel is given a moment first.
		if (stale) void this.refresh();
		else this.#fallback.soon();
		// Compiled out of every build but the browser tests' (vite.config.ts defines __TEST_HOOKS__).
		if (__TEST_HOOKS__) exposeForTests(this.#stores);
	}

	/** Closes every room, the user channel and the metadata database (sign-out or a change of user). */
	async stop(): Promise<void> {
		this.#fallback.stop();
		this.#listeners?.abort();
		userChannel.close();
		for (const store of this.#stores.values()) store.destroy();
		this.#stores.clear();
		this.#access.clear();
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
			this.#fallback.superseded();
			for (const room of list) this.#readmit(room.id);
			const { gone, removed } = afterListState(this.list, this.removed, list);
			this.removed = removed;
			for (const room of gone) this.#stores.get(room.id)?.markRemoved(removalText('removed'));
			this.#setList(list);
			if (gone.length > 0) void this.#saveRemoved();
		},
		room: (room) => {
			this.#fallback.superseded();
			this.#readmit(room.id);
			this.#upsert(room);
		},
		activity: (change) => {
			this.#fallback.superseded();
			this.#upsert(withActivity(this.list, change));
		},
		removed: (roomId, reason) => {
			this.#fallback.superseded();
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
		presence: (userId, online) => (this.list = withPresence(this.list, userId, online)),
	};

	/** A room's unread messages and mentions: the server's counts, or its open store's (`countsOf`). */
	counts(room: RoomSummary): { unread: number; mentions: number } {
		return countsOf(room, this.#stores.get(room.id), this.viewing === room.id);
	}

	/** Whether the user may open `roomId` now (room-access.svelte.ts). */
	access(roomId: string): RoomAccess {
		return this.#access.access(roomId);
	}

	/** Finds out about a room the list does not have while the channel is not live (room-access.svelte.ts). */
	check(roomId: string): Promise<void> {
		return this.#user ? this.#access.check(roomId) : Promise.resolve();
	}

	/** The room's store, opened on first use; null for a room the user may not open. */
	room(roomId: string): RoomStore | null {
		if (!this.#user || !this.#meta) return null;
		const access = this.access(roomId);
		if (access !== 'member' && access !== 'removed') return null;
		let store = this.#stores.get(roomId);
		if (!store) {
			const removal = this.removalOf(roomId);
			store = RoomStore.open(roomId, this.#user, this.#meta, {
				removedNotice: removal ? removalText(removal) : null,
				onRemoved: () => this.#markRemoved(roomId, 'removed'),
				onNewest: (message) => this.#upsert(withNewest(this.list, roomId, message, (r) => this.counts(r))),
				shown: () => this.viewing === roomId,
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

	/** Search on this device: messages with every word (deleted ones never), newest first, marked as the server's. */
	searchLocal(query: string, limit = 50): LocalResult[] {
		return searchMessages(this.#stores.values(), query, limit);
	}

	/** Fetches the room list from the API (the fallback while the channel is down); offline keeps the cached one. */
	refresh(): Promise<void> {
		return this.#fallback.refresh();
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

	/** Changes a member's role; `owner` hands the group over (the caller becomes an admin). */
	async setRole(roomId: string, userId: string, role: Role): Promise<void> {
		this.#adopt(await roomsApi.setRole(roomId, userId, role));
	}

	/** Renames a group or sets its topic (owner and admins); every member's list follows through the channel. */
	async updateDetails(roomId: string, details: { name?: string; topic?: string }): Promise<void> {
		this.#adopt(await roomsApi.update(roomId, details));
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
		this.#access.forget(roomId);
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

	/** A whole list from the server (the channel's `state`, or the API's): any problem fetching it is over. */
	#setList(list: RoomSummary[]): void {
		this.list = sortRooms(list);
		this.error = null;
		// Rooms the user turned out to be in are no longer "unknown".
		for (const room of list) this.#access.forget(room.id);
		this.#save();
		this.#openAll();
	}

	/** Adds or replaces one room and keeps the list in order (none: nothing changed). */
	#upsert(room: RoomSummary | undefined): void {
		if (!room) return;
		const others = this.list.filter((r) => r.id !== room.id);
		this.list = sortRooms([...others, room]);
		this.#access.forget(room.id);
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
			this.#access.refused(roomId);
		}
		this.#stores.get(roomId)?.markRemoved(removalText(reason));
		this.#save();
		void this.#saveRemoved();
	}

	/** Merges a room the API just returned into the list (room-list.ts says how). */
	#adopt(room: Parameters<typeof summaryOf>[0]): void {
		const merged = summaryOf(room, this.summary(room.id), this.#user?.id);
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

	#openAll(): void {
		const open = Math.min(MAX_OPEN_ROOMS, serverConfig.documentsPerConnection - 1);
		for (const room of this.list.slice(0, open)) this.room(room.id);
		// Rooms with files waiting to be sent are opened too: their messages go out without being looked at.
		const meta = this.#meta;
		if (this.#user) openWaitingRooms(this.#user.id, (id) => this.#meta === meta && this.room(id));
	}
}

export const rooms = new Rooms();

/** A page title with the unread total in front: `(3) Chat`, and no prefix at 0. */
export function withUnread(title: string): string {
	const total = rooms.unreadTotal;
	return total > 0 ? `(${total > 999 ? '999+' : total}) ${title}` : title;
}

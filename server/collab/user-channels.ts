import type {
	Connection,
	connectedPayload,
	Document,
	Extension,
	onDisconnectPayload,
} from '@hocuspocus/server';
import { PROTOCOL_VERSION } from '#protocol/version.ts';
import type { Logger } from 'pino';
import type { Db } from '../db/index.ts';
import * as rooms from '../data/rooms.ts';
import { Lookups } from '../db/lookups.ts';
import type { ClusterEvent, EventBus } from '../events/bus.ts';
import type { UserChannelMessage } from '#protocol/user-channel.ts';
import type { CollabContext } from './authentication.ts';
import type { Devices } from './devices.ts';
import {
	allSeeRoom,
	knowsActivity,
	lastMessageOf,
	notifiesOf,
	reaches,
	send,
	socketsWithRoom,
	toState,
	type RoomEntry,
} from './channel-messages.ts';
import { WatchedRooms } from './watched-rooms.ts';

/** Changes to one room within this window go out as one `room` message per user (a burst of messages). */
const REFRESH_DELAY_MS = 50;

/** What a node holds for a user with a channel open on it. */
interface Channel {
	connections: Set<Connection>;
	/** The user's rooms as last sent: which rooms concern them and how each notifies them. */
	rooms: Map<string, RoomEntry>;
}

/**
 * The per-user live channel (src/lib/protocol/user-channel.ts, docs/protocol.md): a user's open `user:<id>`
 * documents on this node, and what the cluster's events mean for them.
 *
 * Counts and summaries are read from the database (the events only say which room to re-read), never incremented,
 * so a missed or repeated event cannot make a count drift; the first message on every connection, and after this
 * node may have missed events, is the whole state. `notify` is driven by the event itself, once per message, and
 * a read that reaches the room's newest message as last read says "nothing unread" without a query (#caughtUp).
 * Devices that have the room open beside their channel count from the document themselves (protocol 6): after a
 * message they are sent nothing but `notify`, after a read nothing (the room tells them the position).
 *
 * The node indexes its channels by room and by member, so an event costs the channels it concerns, not every
 * channel here; and the users of one room it must tell of a change are re-read together, in one statement.
 */
export class UserChannels implements Extension {
	readonly extensionName = 'user-channels';
	readonly #db: Db;
	/** The room lists of the channels that opened in one turn, read together (a reconnect burst opens thousands). */
	readonly #lists: Lookups<string, rooms.RoomListItem[]>;
	readonly #log: Logger;
	readonly #devices: Devices;
	readonly #bus: EventBus;
	readonly #documents: () => ReadonlyMap<string, Document>;
	readonly #channels = new Map<string, Channel>();
	readonly #byContext = new Map<CollabContext, Connection>();
	/** The rooms the channels here show, who shows each and who is in it. */
	readonly #rooms = new WatchedRooms();
	/**
	 * Users whose view of a room is to be re-read, by room id, and the timer that will: each user with whether
	 * the whole room is due (true) or only its activity, its newest message and their counts (false).
	 */
	readonly #pending = new Map<string, { users: Map<string, boolean>; timer: NodeJS.Timeout }>();
	/** The last re-read of each room under way (or waiting for the one before it), by room id. */
	readonly #reading = new Map<string, Promise<void>>();

	constructor(deps: {
		db: Db;
		log: Logger;
		bus: EventBus;
		devices: Devices;
		/** The node's loaded documents (Hocuspocus' `documents`): who has a room open beside their channel. */
		documents: () => ReadonlyMap<string, Document>;
	}) {
		this.#db = deps.db;
		this.#documents = deps.documents;
		this.#lists = new Lookups({
			find: (userIds) => rooms.listsFor(deps.db, userIds),
			idOf: (userId) => userId.toLowerCase(),
			missing: [],
			// A user's list is a row per room: a query answers for a hundred users at most.
			maxKeys: 100,
		});
		this.#log = deps.log.child({ component: 'user-channels' });
		this.#devices = deps.devices;
		this.#bus = deps.bus;
		deps.bus.subscribe((event) => this.#onEvent(event));
		deps.bus.onResync(() => {
			// Events may have been missed: a newer message than the one known, for one.
			this.#rooms.forgetNewest();
			for (const [userId, channel] of this.#channels) {
				for (const connection of channel.connections) void this.#sendState(userId, connection);
			}
		});
	}

	async connected({ connection }: connectedPayload<CollabContext>): Promise<void> {
		const context = connection.context as CollabContext;
		if (!context.userChannel) return;
		const userId = context.user.id;
		let channel = this.#channels.get(userId);
		if (!channel) {
			channel = { connections: new Set(), rooms: new Map() };
			this.#channels.set(userId, channel);
		}
		channel.connections.add(connection);
		this.#byContext.set(context, connection);
		const first = this.#devices.connected(userId);
		await this.#sendState(userId, connection);
		if (await first) await this.#announce(userId);
	}

	async onDisconnect({ context }: onDisconnectPayload<CollabContext>): Promise<void> {
		if (!context?.userChannel) return;
		const connection = this.#byContext.get(context);
		if (!connection) return;
		this.#byContext.delete(context);
		const channel = this.#channels.get(context.user.id);
		if (!channel?.connections.delete(connection)) return;
		if (channel.connections.size === 0) {
			this.#channels.delete(context.user.id);
			for (const roomId of channel.rooms.keys()) this.#rooms.unwatch(roomId, context.user.id);
		}
		// Announced only once the grace for a reload or reconnect has passed (Devices); the hook does not wait.
		const userId = context.user.id;
		this.#devices
			.disconnected(userId)
			.then((gone) => (gone ? this.#announce(userId) : undefined))
			.catch((error: unknown) => this.#log.warn({ err: error, userId }, 'presence not announced'));
	}

	/** Tells the cluster a user's devices on this node changed from none to some or back (presence). */
	async #announce(userId: string): Promise<void> {
		await this.#bus.publish({ type: 'presence', userId });
	}

	/** Someone's presence may have changed: every channel here that shares a room with them hears which way. */
	async #presence(userId: string): Promise<void> {
		const audience = new Set<Channel>();
		for (const watcher of this.#rooms.watchersWith(userId)) {
			const channel = this.#channels.get(watcher);
			if (channel) audience.add(channel);
		}
		if (audience.size === 0) return;
		const online = await this.#devices.anyConnected(userId);
		for (const channel of audience) this.#broadcast(channel, { type: 'presence', userId, online });
	}

	/** Closes every channel (shutdown): their users count as disconnected here. */
	close(): void {
		for (const channel of this.#channels.values()) {
			for (const connection of channel.connections)
				void this.#devices.disconnected((connection.context as CollabContext).user.id);
		}
		this.#channels.clear();
		this.#byContext.clear();
		for (const { timer } of this.#pending.values()) clearTimeout(timer);
		this.#pending.clear();
		this.#rooms.clear();
	}

	async #sendState(userId: string, connection: Connection): Promise<void> {
		try {
			const list = await this.#lists.get(userId);
			const channel = this.#channels.get(userId);
			if (!channel?.connections.has(connection)) return;
			const shown = new Set(list.map((r) => r.id));
			for (const roomId of channel.rooms.keys()) if (!shown.has(roomId)) this.#rooms.unwatch(roomId, userId);
			channel.rooms = new Map(list.map((r) => [r.id, entryOf(r)]));
			for (const room of list) this.#rooms.watch([userId], room);
			const online = await this.#devices.onlineOf([
				...new Set(list.flatMap((r) => r.members.map((m) => m.id))),
			]);
			const states = list.map((r) => toState(r, online));
			send(connection, { type: 'state', protocolVersion: PROTOCOL_VERSION, rooms: states });
		} catch (error) {
			// Without its state the channel is useless: close it, and the client's reconnect asks again.
			this.#log.warn({ err: error, userId }, 'user channel state could not be read; closing the channel');
			connection.close({ code: 4503, reason: 'storage-unavailable' });
		}
	}

	#onEvent(event: ClusterEvent): void {
		switch (event.type) {
			case 'membership': {
				const own = this.#channels.get(event.userId);
				if (own && event.role === null) {
					if (own.rooms.delete(event.roomId)) this.#rooms.unwatch(event.roomId, event.userId);
					const reason = event.roomGone ? 'deleted' : event.by === event.userId ? 'left' : 'removed';
					this.#broadcast(own, { type: 'room-removed', roomId: event.roomId, reason });
				} else if (own) {
					this.#refresh(event.userId, event.roomId);
				}
				// The others in the room see the new member list.
				this.#refreshMembers(event.roomId, event.userId);
				return;
			}
			case 'presence':
				void this.#presence(event.userId).catch((error: unknown) =>
					this.#log.warn({ err: error }, 'presence not sent'),
				);
				return;
			case 'room-details':
				this.#refreshMembers(event.roomId, '');
				return;
			case 'notify-level': {
				// At once, not after the re-read: a message right behind the change must already follow it.
				const room = this.#channels.get(event.userId)?.rooms.get(event.roomId);
				if (room) room.notify = event.level;
				if (room) this.#refresh(event.userId, event.roomId);
				return;
			}
			case 'read': {
				const channel = this.#channels.get(event.userId);
				if (!channel?.rooms.has(event.roomId)) return;
				// Devices with the room open hear the position in it (`reads`) and count from there themselves.
				if (allSeeRoom(channel.connections, socketsWithRoom(this.#documents(), event.roomId))) return;
				if (!this.#caughtUp(channel, event)) this.#refresh(event.userId, event.roomId, false);
				return;
			}
			case 'activity': {
				this.#rooms.heard(event);
				let sockets: Set<string> | undefined;
				for (const userId of this.#rooms.get(event.roomId)?.watchers ?? []) {
					const channel = this.#channels.get(userId);
					const room = channel?.rooms.get(event.roomId);
					if (!channel || !room) continue;
					sockets ??= socketsWithRoom(this.#documents(), event.roomId);
					if (!allSeeRoom(channel.connections, sockets)) this.#refresh(userId, event.roomId, false);
					for (const message of notifiesOf(event, userId, room)) this.#broadcast(channel, message);
				}
				return;
			}
			default:
		}
	}

	#refreshMembers(roomId: string, except: string): void {
		for (const userId of this.#rooms.get(roomId)?.watchers ?? []) {
			if (userId !== except) this.#refresh(userId, roomId);
		}
	}

	/**
	 * Re-reads one room for one user and sends it, at most once per REFRESH_DELAY_MS: the users of the room whose
	 * refresh falls in the same window are read together. `whole`: more than the room's activity (its newest
	 * message, the user's counts) may have changed: its members, name, topic, the user's role or level.
	 */
	#refresh(userId: string, roomId: string, whole = true): void {
		if (!this.#channels.has(userId)) return;
		const pending = this.#pending.get(roomId);
		if (pending) {
			pending.users.set(userId, whole || pending.users.get(userId) === true);
			return;
		}
		const users = new Map([[userId, whole]]);
		const timer = setTimeout(() => {
			// Changes from here on start a new refresh.
			this.#pending.delete(roomId);
			this.#reread(roomId, users);
		}, REFRESH_DELAY_MS);
		this.#pending.set(roomId, { users, timer });
	}

	/**
	 * A read at or past the room's newest message leaves nothing unread: the user's channel hears so without a
	 * query, when this node knows that message and reads nothing of the room right now (a read under way may have
	 * begun before the position was stored and would answer with the counts before it; one still due reads it).
	 * A message newer than the one known has a re-read due, which brings its counts.
	 */
	#caughtUp(channel: Channel, read: { roomId: string; at?: string; clientMsgId?: string }): boolean {
		const newest = this.#rooms.get(read.roomId)?.newest;
		if (!newest || read.at === undefined || read.clientMsgId === undefined) return false;
		if (this.#pending.has(read.roomId) || this.#reading.has(read.roomId)) return false;
		if (!reaches({ at: read.at, clientMsgId: read.clientMsgId }, newest.position)) return false;
		if (![...channel.connections].every(knowsActivity)) return false;
		const { lastMessage, activityAt } = newest;
		this.#broadcast(channel, {
			type: 'room-activity',
			roomId: read.roomId,
			lastMessage,
			activityAt,
			unread: 0,
			mentions: 0,
		});
		return true;
	}

	/**
	 * Re-reads of one room run one after the other: two at once could answer out of order, and the older view,
	 * sent last, would leave a channel with counts from before the newer one.
	 */
	#reread(roomId: string, users: Map<string, boolean>): void {
		const previous = this.#reading.get(roomId);
		const reading = (async () => {
			await previous;
			await this.#rereadNow(roomId, users).catch((error: unknown) => {
				// The next change of the room, or the next connect, brings the state.
				this.#log.warn({ err: error, roomId, users: users.size }, 'room state for user channels not read');
			});
		})();
		this.#reading.set(roomId, reading);
		void reading.finally(() => {
			if (this.#reading.get(roomId) === reading) this.#reading.delete(roomId);
		});
	}

	async #rereadNow(roomId: string, users: Map<string, boolean>): Promise<void> {
		const whole = new Map<string, Channel>();
		const activity = new Map<string, Channel>();
		for (const [userId, wholeDue] of users) {
			const channel = this.#channels.get(userId);
			if (!channel) continue;
			// A device of theirs that does not know `room-activity` gets the whole room, as before it existed.
			const old = ![...channel.connections].every(knowsActivity);
			(wholeDue || old ? whole : activity).set(userId, channel);
		}
		await Promise.all([
			whole.size > 0 ? this.#sendRooms(roomId, whole) : undefined,
			activity.size > 0 ? this.#sendActivity(roomId, activity) : undefined,
		]);
	}

	/** Sends each user the whole room as they see it (`room`). */
	async #sendRooms(roomId: string, channels: Map<string, Channel>): Promise<void> {
		const { views, newest } = await rooms.roomForMembers(this.#db, roomId, [...channels.keys()]);
		const [first] = views.values();
		// Gone: the membership event that removed it tells the channel, with the reason (left, removed,
		// deleted); saying "removed" here would race it and could be wrong (a refresh found the room gone
		// right after the user left it). A node that missed that event sends a whole new state later.
		if (!first) return;
		const online = await this.#devices.onlineOf(first.members.map((m) => m.id));
		const shown: string[] = [];
		for (const [userId, room] of views) {
			const channel = channels.get(userId);
			if (!channel || this.#channels.get(userId) !== channel) continue;
			channel.rooms.set(roomId, entryOf(room));
			shown.push(userId);
			this.#broadcast(channel, { type: 'room', room: toState(room, online) });
		}
		// The members are the room's, the same in every view: indexed once.
		if (shown.length > 0) this.#rooms.watch(shown, first);
		this.#knowNewest(roomId, newest, first);
	}

	/**
	 * Sends each user the room's newest message and their counts (`room-activity`): after a message or a read,
	 * nothing else of the room changed, and its members are most of a `room`'s size and of its statement's work.
	 */
	async #sendActivity(roomId: string, channels: Map<string, Channel>): Promise<void> {
		const { views, newest } = await rooms.activityForMembers(this.#db, roomId, [...channels.keys()]);
		const [first] = views.values();
		if (first) this.#knowNewest(roomId, newest, first);
		for (const [userId, room] of views) {
			const channel = channels.get(userId);
			// Not (or no longer) in their list: a membership event or the next `state` brings the whole room.
			if (!channel || this.#channels.get(userId) !== channel || !channel.rooms.has(roomId)) continue;
			channel.rooms.set(roomId, entryOf(room));
			this.#broadcast(channel, {
				type: 'room-activity',
				roomId,
				lastMessage: lastMessageOf(room),
				activityAt: room.activityAt,
				unread: room.unread,
				mentions: room.mentions,
			});
		}
	}

	/** Keeps what a view says of the room's newest message (the same in every member's view). */
	#knowNewest(roomId: string, position: rooms.MessagePosition | null, view: rooms.RoomListItem): void {
		const watch = this.#rooms.get(roomId);
		const lastMessage = lastMessageOf(view);
		if (!watch || !position || !lastMessage) return;
		// A re-read's two statements (whole rooms, activity) answer in either order: an older view never wins.
		if (watch.newest && !reaches(position, watch.newest.position)) return;
		watch.newest = { position, lastMessage, activityAt: view.activityAt };
	}

	#broadcast(channel: Channel, message: UserChannelMessage): void {
		for (const connection of channel.connections) send(connection, message);
	}
}

/** What a channel keeps of one of its rooms. */
function entryOf(room: rooms.RoomListItem): RoomEntry {
	return { name: room.name, isGroup: room.isGroup, notify: room.notify };
}

import type { Connection, connectedPayload, Extension, onDisconnectPayload } from '@hocuspocus/server';
import { PROTOCOL_VERSION, ROOM_ACTIVITY_PROTOCOL } from '#protocol/version.ts';
import type { Logger } from 'pino';
import type { Db } from '../db/index.ts';
import * as rooms from '../data/rooms.ts';
import type { ClusterEvent, EventBus } from '../events/bus.ts';
import { type NotifyLevel, type RoomState, type UserChannelMessage } from '#protocol/user-channel.ts';
import { notifies } from './activity.ts';
import type { CollabContext } from './authentication.ts';
import type { Devices } from './devices.ts';

/** Changes to one room within this window go out as one `room` message per user (a burst of messages). */
const REFRESH_DELAY_MS = 50;

/** What a channel keeps of one of its rooms (its members are the node's, in `RoomWatch`). */
interface RoomEntry {
	name: string | null;
	isGroup: boolean;
	notify: NotifyLevel;
}

/** What a node holds for a user with a channel open on it. */
interface Channel {
	connections: Set<Connection>;
	/** The user's rooms as last sent: which rooms concern them and how each notifies them. */
	rooms: Map<string, RoomEntry>;
}

/** A room that channels on this node show: who shows it, and who is in it (as last read). */
interface RoomWatch {
	watchers: Set<string>;
	members: Set<string>;
}

/**
 * The per-user live channel (src/lib/protocol/user-channel.ts, docs/protocol.md): a user's open `user:<id>`
 * documents on this node, and what the cluster's events mean for them.
 *
 * Counts and summaries are always read from the database (the events only say which room to re-read), so a
 * missed or repeated event cannot make a count drift; the first message on every connection, and after this node
 * may have missed events, is the whole state. Only `notify` is driven by the event itself, once per message.
 *
 * The node indexes its channels by room and by member, so an event costs the channels it concerns, not every
 * channel here; and the users of one room it must tell of a change are re-read together, in one statement.
 */
export class UserChannels implements Extension {
	readonly extensionName = 'user-channels';
	readonly #db: Db;
	readonly #log: Logger;
	readonly #devices: Devices;
	readonly #bus: EventBus;
	readonly #channels = new Map<string, Channel>();
	readonly #byContext = new Map<CollabContext, Connection>();
	/** The rooms the channels here show, by room id. */
	readonly #rooms = new Map<string, RoomWatch>();
	/** The rooms in `#rooms` each user is a member of, by user id (for presence). */
	readonly #memberOf = new Map<string, Set<string>>();
	/**
	 * Users whose view of a room is to be re-read, by room id, and the timer that will: each user with whether
	 * the whole room is due (true) or only its activity, its newest message and their counts (false).
	 */
	readonly #pending = new Map<string, { users: Map<string, boolean>; timer: NodeJS.Timeout }>();

	constructor(deps: { db: Db; log: Logger; bus: EventBus; devices: Devices }) {
		this.#db = deps.db;
		this.#log = deps.log.child({ component: 'user-channels' });
		this.#devices = deps.devices;
		this.#bus = deps.bus;
		deps.bus.subscribe((event) => this.#onEvent(event));
		deps.bus.onResync(() => {
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
			for (const roomId of channel.rooms.keys()) this.#unwatch(roomId, context.user.id);
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
		for (const roomId of this.#memberOf.get(userId) ?? []) {
			for (const watcher of this.#rooms.get(roomId)?.watchers ?? []) {
				const channel = this.#channels.get(watcher);
				if (channel) audience.add(channel);
			}
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
		this.#memberOf.clear();
	}

	/** Who shows a room here: its watchers, and the room's members as just read. */
	#watch(userIds: Iterable<string>, room: rooms.RoomListItem): void {
		let watch = this.#rooms.get(room.id);
		if (!watch) {
			watch = { watchers: new Set(), members: new Set() };
			this.#rooms.set(room.id, watch);
		}
		for (const userId of userIds) watch.watchers.add(userId);
		this.#setMembers(room.id, watch, new Set(room.members.map((m) => m.id)));
	}

	#unwatch(roomId: string, userId: string): void {
		const watch = this.#rooms.get(roomId);
		if (!watch?.watchers.delete(userId) || watch.watchers.size > 0) return;
		this.#setMembers(roomId, watch, new Set());
		this.#rooms.delete(roomId);
	}

	#setMembers(roomId: string, watch: RoomWatch, members: Set<string>): void {
		for (const member of watch.members) {
			if (members.has(member)) continue;
			const of = this.#memberOf.get(member);
			of?.delete(roomId);
			if (of?.size === 0) this.#memberOf.delete(member);
		}
		for (const member of members) {
			if (watch.members.has(member)) continue;
			let of = this.#memberOf.get(member);
			if (!of) {
				of = new Set();
				this.#memberOf.set(member, of);
			}
			of.add(roomId);
		}
		watch.members = members;
	}

	async #sendState(userId: string, connection: Connection): Promise<void> {
		try {
			const list = await rooms.listFor(this.#db, userId);
			const channel = this.#channels.get(userId);
			if (!channel?.connections.has(connection)) return;
			const shown = new Set(list.map((r) => r.id));
			for (const roomId of channel.rooms.keys()) if (!shown.has(roomId)) this.#unwatch(roomId, userId);
			channel.rooms = new Map(list.map((r) => [r.id, entryOf(r)]));
			for (const room of list) this.#watch([userId], room);
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
					if (own.rooms.delete(event.roomId)) this.#unwatch(event.roomId, event.userId);
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
			case 'read':
				if (this.#channels.get(event.userId)?.rooms.has(event.roomId))
					this.#refresh(event.userId, event.roomId, false);
				return;
			case 'activity':
				for (const userId of this.#rooms.get(event.roomId)?.watchers ?? []) {
					const channel = this.#channels.get(userId);
					const room = channel?.rooms.get(event.roomId);
					if (!channel || !room) continue;
					this.#refresh(userId, event.roomId, false);
					if (userId === event.writer.id) continue;
					for (const message of event.messages) {
						const mention = message.mentions.includes(userId);
						if (!notifies(room.notify, mention)) continue;
						this.#broadcast(channel, {
							type: 'notify',
							roomId: event.roomId,
							roomName: room.name,
							isGroup: room.isGroup,
							clientMsgId: message.clientMsgId,
							senderId: event.writer.id,
							senderName: event.writer.name,
							content: message.content,
							mention,
						});
					}
				}
				return;
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
			this.#reread(roomId, users).catch((error: unknown) => {
				// The next change of the room, or the next connect, brings the state.
				this.#log.warn({ err: error, roomId, users: users.size }, 'room state for user channels not read');
			});
		}, REFRESH_DELAY_MS);
		this.#pending.set(roomId, { users, timer });
	}

	async #reread(roomId: string, users: Map<string, boolean>): Promise<void> {
		const whole = new Map<string, Channel>();
		const activity = new Map<string, Channel>();
		for (const [userId, wholeDue] of users) {
			const channel = this.#channels.get(userId);
			if (!channel) continue;
			// A device of theirs that does not know `room-activity` gets the whole room, as before it existed.
			const old = [...channel.connections].some((c) => !knowsActivity(c.context as CollabContext));
			(wholeDue || old ? whole : activity).set(userId, channel);
		}
		await Promise.all([
			whole.size > 0 ? this.#sendRooms(roomId, whole) : undefined,
			activity.size > 0 ? this.#sendActivity(roomId, activity) : undefined,
		]);
	}

	/** Sends each user the whole room as they see it (`room`). */
	async #sendRooms(roomId: string, channels: Map<string, Channel>): Promise<void> {
		const views = await rooms.roomForMembers(this.#db, roomId, [...channels.keys()]);
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
		if (shown.length > 0) this.#watch(shown, first);
	}

	/**
	 * Sends each user the room's newest message and their counts (`room-activity`): after a message or a read,
	 * nothing else of the room changed, and its members are most of a `room`'s size and of its statement's work.
	 */
	async #sendActivity(roomId: string, channels: Map<string, Channel>): Promise<void> {
		const views = await rooms.activityForMembers(this.#db, roomId, [...channels.keys()]);
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

	#broadcast(channel: Channel, message: UserChannelMessage): void {
		for (const connection of channel.connections) send(connection, message);
	}
}

function send(connection: Connection, message: UserChannelMessage): void {
	connection.sendStateless(JSON.stringify(message));
}

/** What a channel keeps of one of its rooms. */
function entryOf(room: rooms.RoomListItem): RoomEntry {
	return { name: room.name, isGroup: room.isGroup, notify: room.notify };
}

/** Whether a connection's client understands `room-activity` (bots that say no version get `room`). */
function knowsActivity(context: CollabContext): boolean {
	return context.protocol !== null && context.protocol >= ROOM_ACTIVITY_PROTOCOL;
}

/** A room's newest message in short, as the channel sends it. */
function lastMessageOf(room: rooms.RoomListItem): RoomState['lastMessage'] {
	const last = room.lastMessage;
	return last
		? {
				clientMsgId: last.clientMsgId,
				senderId: last.senderId,
				senderName: last.senderName,
				content: last.content,
				createdAt: last.createdAt,
			}
		: null;
}

/** A room as the channel sends it: its newest message in short, and who of its members is online. */
function toState(room: rooms.RoomListItem, online: ReadonlySet<string>): RoomState {
	return {
		...room,
		members: room.members.map((m) => ({ ...m, online: online.has(m.id) })),
		lastMessage: lastMessageOf(room),
	};
}

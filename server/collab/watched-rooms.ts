import type { RoomState } from '#protocol/user-channel.ts';
import type { MessagePosition, RoomListItem } from '../data/rooms.ts';
import type { ClusterEvent } from '../events/bus.ts';
import { reaches } from './channel-messages.ts';

type ActivityEvent = Extract<ClusterEvent, { type: 'activity' }>;

/** A room that channels on this node show: who shows it, and who is in it (as last read). */
export interface RoomWatch {
	watchers: Set<string>;
	members: Set<string>;
	/** Its newest message as last read (for the order, the short form), when it has one. */
	newest?: { position: MessagePosition; lastMessage: RoomState['lastMessage']; activityAt: string };
}

/**
 * The rooms the user channels of a node show (user-channels.ts): who shows each (its watchers) and who is in it, as
 * last read, and the rooms each user is a member of, so that an event about a room or a person costs the channels
 * it concerns, not every channel of the node.
 */
export class WatchedRooms {
	readonly #rooms = new Map<string, RoomWatch>();
	/** The rooms in `#rooms` each user is a member of, by user id (for presence). */
	readonly #memberOf = new Map<string, Set<string>>();

	get(roomId: string): RoomWatch | undefined {
		return this.#rooms.get(roomId);
	}

	/** The users whose channels show a room that `userId` is a member of. */
	watchersWith(userId: string): Set<string> {
		const watchers = new Set<string>();
		for (const roomId of this.#memberOf.get(userId) ?? [])
			for (const watcher of this.#rooms.get(roomId)?.watchers ?? []) watchers.add(watcher);
		return watchers;
	}

	/** What is known of rooms' newest messages may be out of date (this node may have missed events). */
	forgetNewest(): void {
		for (const watch of this.#rooms.values()) delete watch.newest;
	}

	/**
	 * Messages another device just wrote (a cluster `activity` event, sent once they are stored): a newer one
	 * becomes the room's newest. An edit, delete or reaction may have changed the newest one: forgotten, the next
	 * read asks the database.
	 */
	heard(event: ActivityEvent): void {
		const watch = this.#rooms.get(event.roomId);
		if (!watch) return;
		if (event.others > 0) {
			delete watch.newest;
			return;
		}
		for (const m of event.messages) {
			const position = { at: m.createdAt, clientMsgId: m.clientMsgId };
			// Only a room whose newest is known: a room never read here may hold newer messages than this one.
			if (!watch.newest || !reaches(position, watch.newest.position)) continue;
			watch.newest = {
				position,
				lastMessage: {
					clientMsgId: m.clientMsgId,
					senderId: event.writer.id,
					senderName: event.writer.name,
					content: m.content,
					createdAt: m.createdAt,
				},
				activityAt: m.receivedAt,
			};
		}
	}

	clear(): void {
		this.#rooms.clear();
		this.#memberOf.clear();
	}

	/** Who shows a room here: its watchers, and the room's members as just read. */
	watch(userIds: Iterable<string>, room: RoomListItem): void {
		let watch = this.#rooms.get(room.id);
		if (!watch) {
			watch = { watchers: new Set(), members: new Set() };
			this.#rooms.set(room.id, watch);
		}
		for (const userId of userIds) watch.watchers.add(userId);
		this.#setMembers(room.id, watch, new Set(room.members.map((m) => m.id)));
	}

	unwatch(roomId: string, userId: string): void {
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
}

import { randomUUID } from 'node:crypto';
import type { Db } from './db/index.ts';
import * as documents from './data/documents.ts';
import * as rooms from './data/rooms.ts';
import * as users from './data/users.ts';
import { AppError, forbidden, notFound } from './errors.ts';
import type { Role, Room } from '#protocol/api.ts';
import type { NotifyLevel } from '#protocol/user-channel.ts';
import type { EventBus } from './events/bus.ts';

/** Whether `caller` may remove `target` or change their role: the owner anyone, an admin plain members. */
function manages(caller: Role, target: Role): boolean {
	return caller === 'owner' || (caller === 'admin' && (target === 'member' || target === 'readonly'));
}

/**
 * Room verbs with their permission rules; HTTP routes stay thin. Every change of membership is published on the
 * cluster's event bus once committed: every node then closes what the change revokes and updates the user
 * channels (server/collab/access.ts, server/collab/user-channels.ts).
 */
export class RoomService {
	readonly #db: Db;
	readonly #bus: EventBus;

	constructor(db: Db, bus: EventBus) {
		this.#db = db;
		this.#bus = bus;
	}

	/** Creates a room; a 1:1 room with the same pair returns the existing one (`created: false`). */
	async create(
		callerId: string,
		body: { name?: string; isGroup: boolean; memberIds: string[] },
	): Promise<{ room: Room; created: boolean }> {
		const others = [...new Set(body.memberIds.map((id) => id.toLowerCase()))].filter((id) => id !== callerId);
		if (!body.isGroup && others.length !== 1) {
			throw new AppError('validation_failed', 'a 1:1 room needs exactly one other member', [
				{ path: 'memberIds', message: 'a 1:1 room needs exactly one other member, not yourself' },
			]);
		}
		const known = await users.existingIds(this.#db, others);
		const unknown = others.filter((id) => !known.has(id));
		if (unknown.length > 0) {
			throw new AppError('validation_failed', `unknown user ids: ${unknown.join(', ')}`, [
				{ path: 'memberIds', message: 'unknown user ids' },
			]);
		}

		const id = randomUUID();
		const key = body.isGroup ? null : rooms.directKey(callerId, others[0] as string);
		const result = await this.#db.transaction(async (tx) => {
			const inserted = await rooms.insert(tx, {
				id,
				name: body.isGroup ? (body.name ?? null) : null,
				isGroup: body.isGroup,
				directKey: key,
				createdBy: callerId,
			});
			if (!inserted) return { id: (await rooms.findDirect(tx, key as string)) as string, created: false };
			await rooms.addMembers(tx, id, [
				{ userId: callerId, role: 'owner' },
				...others.map((userId) => ({
					userId,
					role: body.isGroup ? ('member' as const) : ('owner' as const),
				})),
			]);
			return { id, created: true };
		});
		const room = await rooms.get(this.#db, result.id);
		if (!room) throw notFound('room');
		if (result.created) {
			for (const member of room.members) {
				await this.#bus.publish({
					type: 'membership',
					roomId: room.id,
					userId: member.id,
					role: member.role,
					by: callerId,
				});
			}
		}
		return { room, created: result.created };
	}

	/** The room, if the caller is a member. A room the caller is not in is reported as not found. */
	async getFor(callerId: string, roomId: string): Promise<{ room: Room; role: Role }> {
		const role = await rooms.roleOf(this.#db, roomId, callerId);
		const room = role ? await rooms.get(this.#db, roomId) : null;
		if (!role || !room) throw notFound('room');
		return { room, role };
	}

	async addMember(
		callerId: string,
		roomId: string,
		userId: string,
		role: Exclude<Role, 'owner'>,
	): Promise<Room> {
		const { room, role: callerRole } = await this.getFor(callerId, roomId);
		if (!room.isGroup)
			throw new AppError('bad_request', 'members of a 1:1 room cannot change; create a group instead');
		if (callerRole !== 'owner' && callerRole !== 'admin')
			throw forbidden('only the owner or an admin can add members');
		if (role === 'admin' && callerRole !== 'owner') throw forbidden('only the owner can add an admin');
		if (!(await users.findById(this.#db, userId))) throw notFound('user');
		if (room.members.some((m) => m.id === userId))
			throw new AppError('conflict', 'already a member of this room');
		await rooms.addMembers(this.#db, roomId, [{ userId, role }]);
		await this.#bus.publish({ type: 'membership', roomId, userId, role, by: callerId });
		return (await rooms.get(this.#db, roomId)) as Room;
	}

	/**
	 * Owners and admins remove others (admins only plain members); anyone may leave a group. An owner who leaves
	 * hands the group to its longest-standing admin, else member (as when an account is deleted); a group left by
	 * its last member is deleted.
	 */
	async removeMember(callerId: string, roomId: string, userId: string): Promise<void> {
		if (userId === callerId && (await rooms.roleOf(this.#db, roomId, callerId)) === 'owner')
			return this.#ownerLeaves(callerId, roomId);
		const { target, callerRole } = await this.#targetOf(callerId, roomId, userId, 'removed from the room');
		if (userId !== callerId && !manages(callerRole, target.role))
			throw forbidden('only the owner, or an admin for plain members, can remove members');
		await rooms.removeMember(this.#db, roomId, userId);
		await this.#bus.publish({ type: 'membership', roomId, userId, role: null, by: callerId });
	}

	async #ownerLeaves(ownerId: string, roomId: string): Promise<void> {
		const { room } = await this.getFor(ownerId, roomId);
		if (!room.isGroup) throw new AppError('bad_request', 'a 1:1 room cannot be left');
		const handed = await this.#db.transaction(async (tx) => {
			const result = await rooms.handOver(tx, ownerId, roomId);
			if (result.deleted.includes(roomId)) await documents.remove(tx, `room:${roomId}`);
			else await rooms.removeMember(tx, roomId, ownerId);
			return result;
		});
		const roomGone = handed.deleted.includes(roomId);
		await this.#bus.publish({
			type: 'membership',
			roomId,
			userId: ownerId,
			role: null,
			by: ownerId,
			roomGone,
		});
		for (const heir of handed.owners)
			await this.#bus.publish({ type: 'membership', ...heir, role: 'owner', by: ownerId });
	}

	/** Renames a group or sets its topic: its owner and admins. */
	async updateDetails(
		callerId: string,
		roomId: string,
		details: { name?: string; topic?: string },
	): Promise<Room> {
		const { room, role } = await this.getFor(callerId, roomId);
		if (!room.isGroup) throw new AppError('bad_request', 'a 1:1 room has no name or topic to change');
		if (role !== 'owner' && role !== 'admin')
			throw forbidden('only the owner or an admin can rename the group');
		await rooms.setDetails(this.#db, roomId, details);
		await this.#bus.publish({ type: 'room-details', roomId });
		return (await rooms.get(this.#db, roomId)) as Room;
	}

	/**
	 * Changes a member's role: the owner sets any role, and by making someone `owner` hands the group over (they
	 * become an admin); an admin only between `member` and `readonly`, and only for plain members. Open connections
	 * to the room close on every node and reopen with the new rights.
	 */
	async changeRole(callerId: string, roomId: string, userId: string, role: Role): Promise<Room> {
		const { target, callerRole } = await this.#targetOf(callerId, roomId, userId, 'given another role');
		if (role === 'owner') {
			if (callerRole !== 'owner') throw forbidden('only the owner can hand the group over');
			await this.#db.transaction(async (tx) => {
				await rooms.setRole(tx, roomId, userId, 'owner');
				await rooms.setRole(tx, roomId, callerId, 'admin');
			});
			await this.#bus.publish({ type: 'membership', roomId, userId, role: 'owner', by: callerId });
			await this.#bus.publish({ type: 'membership', roomId, userId: callerId, role: 'admin', by: callerId });
			return (await rooms.get(this.#db, roomId)) as Room;
		}
		if (!manages(callerRole, target.role) || (callerRole !== 'owner' && role === 'admin'))
			throw forbidden('only the owner, or an admin for plain members, can change roles');
		if (target.role !== role) {
			await rooms.setRole(this.#db, roomId, userId, role);
			await this.#bus.publish({ type: 'membership', roomId, userId, role, by: callerId });
		}
		return (await rooms.get(this.#db, roomId)) as Room;
	}

	/** The member a change is about, in a group, and not its owner (`what`: the change, for the message). */
	async #targetOf(callerId: string, roomId: string, userId: string, what: string) {
		const { room, role: callerRole } = await this.getFor(callerId, roomId);
		const target = room.members.find((m) => m.id === userId);
		if (!target) throw notFound('member');
		if (!room.isGroup) throw new AppError('bad_request', 'members of a 1:1 room cannot change');
		if (target.role === 'owner') throw new AppError('bad_request', `the owner cannot be ${what}`);
		return { target, callerRole };
	}

	/** How the room notifies the caller (every device of theirs hears of it through the user channel). */
	async setNotify(callerId: string, roomId: string, level: NotifyLevel): Promise<void> {
		await this.getFor(callerId, roomId);
		await rooms.setNotify(this.#db, roomId, callerId, level);
		await this.#bus.publish({ type: 'notify-level', roomId, userId: callerId, level });
	}
}

import { randomUUID } from 'node:crypto';
import type { Db } from './db/index.ts';
import * as rooms from './data/rooms.ts';
import * as users from './data/users.ts';
import { AppError, forbidden, notFound } from './errors.ts';
import type { Role, Room } from '../src/lib/protocol/api.ts';

export type MembershipListener = (event: { roomId: string; userId: string; role: Role | null }) => void;

/** Room verbs with their permission rules; HTTP routes stay thin, the collab server listens for changes. */
export class RoomService {
	readonly #db: Db;
	readonly #listeners = new Set<MembershipListener>();

	constructor(db: Db) {
		this.#db = db;
	}

	/** Called after a membership changes (role null: removed), e.g. to close that user's open documents. */
	onMembershipChange(listener: MembershipListener): () => void {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
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
		this.#emit({ roomId, userId, role });
		return (await rooms.get(this.#db, roomId)) as Room;
	}

	/** Owners and admins remove others (admins only plain members); anyone may leave a group. */
	async removeMember(callerId: string, roomId: string, userId: string): Promise<void> {
		const { room, role: callerRole } = await this.getFor(callerId, roomId);
		const target = room.members.find((m) => m.id === userId);
		if (!target) throw notFound('member');
		if (!room.isGroup) throw new AppError('bad_request', 'members of a 1:1 room cannot change');
		if (target.role === 'owner')
			throw new AppError('bad_request', 'the owner cannot be removed from the room');
		if (userId !== callerId) {
			const allowed =
				callerRole === 'owner' ||
				(callerRole === 'admin' && (target.role === 'member' || target.role === 'readonly'));
			if (!allowed) throw forbidden('only the owner, or an admin for plain members, can remove members');
		}
		await rooms.removeMember(this.#db, roomId, userId);
		this.#emit({ roomId, userId, role: null });
	}

	#emit(event: Parameters<MembershipListener>[0]) {
		for (const listener of this.#listeners) listener(event);
	}
}

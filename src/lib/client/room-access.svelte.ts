import { SvelteMap } from 'svelte/reactivity';
import type { Room } from '../protocol/api.ts';
import { ApiError, roomsApi } from './api.ts';
import type { RoomAccess } from './room-list.ts';
import { userChannel } from './user-channel.svelte.ts';

/** When the user channel has not delivered the list this long after a start or a reconnect, ask the API. */
export const FALLBACK_AFTER_MS = 2_000;

export interface AccessHost {
	/** The room is in the user's list. */
	listed(roomId: string): boolean;
	/** The user was in the room, and its local copy is still here. */
	removed(roomId: string): boolean;
	/** The server says the user is a member: the room joins the list. */
	adopt(room: Room): void;
}

/**
 * Whether the user may open a room the list does not have (a deep link, a room added a moment ago). While the
 * user channel is live the list is the server's, so a room missing from it is not the user's; otherwise the
 * channel is given a moment, then the API is asked.
 */
export class AccessChecks {
	/** Rooms not in the list that the server is being asked about, or that it said are not the user's. */
	readonly #checked = new SvelteMap<string, 'checking' | 'unknown'>();
	readonly #host: AccessHost;

	constructor(host: AccessHost) {
		this.#host = host;
	}

	access(roomId: string): RoomAccess {
		if (this.#host.listed(roomId)) return 'member';
		if (this.#host.removed(roomId)) return 'removed';
		return this.#checked.get(roomId) ?? (userChannel.status === 'live' ? 'unknown' : 'checking');
	}

	/** Decides about `roomId` (see the class comment): a member gets the room into the list; anyone else `unknown`. */
	async check(roomId: string): Promise<void> {
		if (this.#checked.has(roomId) || this.access(roomId) !== 'checking') return;
		if (!navigator.onLine) {
			// Not in the list on this device, and nobody to ask.
			this.#checked.set(roomId, 'unknown');
			return;
		}
		this.#checked.set(roomId, 'checking');
		await new Promise((resolve) => setTimeout(resolve, FALLBACK_AFTER_MS));
		if (userChannel.status === 'live' || this.#host.listed(roomId)) {
			this.#checked.delete(roomId);
			return;
		}
		try {
			this.#host.adopt(await roomsApi.get(roomId));
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

	/** The room is in the list now, or forgotten: whatever was decided about it no longer holds. */
	forget(roomId: string): void {
		this.#checked.delete(roomId);
	}

	/** The server said the user is not in the room. */
	refused(roomId: string): void {
		this.#checked.set(roomId, 'unknown');
	}

	clear(): void {
		this.#checked.clear();
	}
}

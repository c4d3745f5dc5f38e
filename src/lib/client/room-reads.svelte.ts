import type { Link } from '../sync/ports.ts';
import { compareOrder } from '../protocol/events.ts';
import { uuid } from '../protocol/ids.ts';
import { mentionsName } from '../protocol/user-channel.ts';
import {
	placeOf,
	positionOf,
	type ClientStateless,
	type MemberReadPosition,
	type Place,
	type ReadPosition,
} from '../protocol/stateless.ts';
import type { ChatMessage } from './room-model.ts';
import type { MetaStore, ReadState } from './store.ts';

/** Read positions go to the server at most this often while the reader scrolls. */
const READ_SEND_DELAY_MS = 1_000;

/** What the read tracker needs of its room. */
export interface ReadHost {
	readonly roomId: string;
	readonly userId: string;
	/** The user's name, as mentions of them are written. */
	readonly userName: string;
	readonly meta: MetaStore;
	/** The room's messages in display order (reactive). */
	events(): ChatMessage[];
	/** Whether the device holds the room's every message (none older to page in from the server). */
	holdsAll(): boolean;
	/** The room's link when it is synced and the room open; undefined otherwise. */
	syncedLink(): Link | undefined;
}

/**
 * A room's read receipts on this device: this user's read position (kept on the device, sent to the server,
 * adopted from the user's other devices) and the other members' (for "seen by"). Positions only move forward.
 */
export class ReadTracker {
	/** How far this user has read, on this device. */
	readState = $state<ReadState | null>(null);
	/**
	 * This user's read position is known: kept on the device, or told by the server (which may say there is
	 * none). A device that never held it (a new one) learns it one round trip after the room syncs.
	 */
	known = $state(false);
	/** Other members' read positions, from the server. */
	#reads = $state.raw(new Map<string, Place>());
	#timer: ReturnType<typeof setTimeout> | undefined;
	readonly #host: ReadHost;

	/**
	 * Messages of others after this user's read position, those of them that @mention this user (as the server
	 * counts both), and whether the messages here reach back to the read position (or the room's first message):
	 * if not, the room holds more unread messages than this device.
	 */
	readonly #counts = $derived.by(() => {
		const read = this.readState;
		const events = this.#host.events();
		let unread = 0;
		let mentions = 0;
		let i = events.length - 1;
		for (; i >= 0; i--) {
			const m = events[i]!;
			if (read && compareOrder(m, read) <= 0) break;
			if (m.own || m.deleted) continue;
			unread++;
			if (m.content.includes('@') && mentionsName(m.content, this.#host.userName)) mentions++;
		}
		return { unread, mentions, covers: i >= 0 || this.#host.holdsAll() };
	});

	get unreadCount(): number {
		return this.#counts.unread;
	}

	get mentionCount(): number {
		return this.#counts.mentions;
	}

	/** The counts above are the room's, not only what this device holds of it. */
	get covers(): boolean {
		return this.#counts.covers;
	}

	constructor(host: ReadHost) {
		this.#host = host;
	}

	/** Marks everything up to the newest message as read, and tells the server a moment later. */
	markRead(): void {
		const last = this.#host.events().at(-1);
		if (!last) return;
		this.adopt({ at: last.at, clientMsgId: last.clientMsgId });
		clearTimeout(this.#timer);
		this.#timer = setTimeout(() => this.send(), READ_SEND_DELAY_MS);
	}

	/** The other members who have read `message` (their read position is at it or later). */
	seenBy(message: Place): string[] {
		const out: string[] = [];
		for (const [userId, position] of this.#reads) {
			if (userId !== this.#host.userId && compareOrder(message, position) <= 0) out.push(userId);
		}
		return out;
	}

	/**
	 * The first message from someone else after what was last read: where the "new messages" marker goes. None
	 * without a read position: a room never read (or whose position is not known yet) opens at the newest
	 * message, not above the first of thousands.
	 */
	firstUnreadId(): string | null {
		const read = this.readState;
		if (!read) return null;
		for (const m of this.#host.events()) {
			if (m.own) continue;
			if (compareOrder(m, read) > 0) return m.clientMsgId;
		}
		return null;
	}

	/** What the device kept from earlier sessions. */
	restore(read: ReadState | null): void {
		if (!read) return;
		this.known = true;
		const current = this.readState;
		if (!current || compareOrder(read, current) > 0) this.readState = read;
	}

	/** Moves this user's read position forward (never back), on this device. */
	adopt(position: Place): void {
		this.known = true;
		const current = this.readState;
		if (current && compareOrder(position, current) <= 0) return;
		const next: ReadState = {
			roomId: this.#host.roomId,
			at: position.at,
			clientMsgId: position.clientMsgId,
		};
		this.readState = next;
		void this.#host.meta
			.saveReadState(next)
			.catch((error: unknown) => console.warn('cannot save read state', error));
	}

	/** Tells the server how far this user has read (after each sync too, so offline reading is shared). */
	send(): void {
		const link = this.#host.syncedLink();
		if (!link) return;
		const read = this.readState;
		const position: ReadPosition | null =
			read && uuid.safeParse(read.clientMsgId).success ? positionOf(read) : null;
		link.sendStateless(JSON.stringify({ type: 'read', position } satisfies ClientStateless));
	}

	/** Members' read positions from the server: others' for "seen by", this user's from their other devices. */
	received(positions: MemberReadPosition[]): void {
		// The first answer lists every member's position: missing from it, this user has none.
		this.known = true;
		const reads = new Map(this.#reads);
		for (const { userId, ...wire } of positions) {
			const position = placeOf(wire);
			if (userId === this.#host.userId) {
				this.adopt(position);
				continue;
			}
			const known = reads.get(userId);
			if (!known || compareOrder(known, position) < 0) reads.set(userId, position);
		}
		this.#reads = reads;
	}

	close(): void {
		clearTimeout(this.#timer);
	}
}

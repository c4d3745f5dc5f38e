import type { Document, Extension, onStatelessPayload } from '@hocuspocus/server';
import type { Logger } from 'pino';
import type { Db } from '../db/index.ts';
import * as reads from '../data/reads.ts';
import type { RoomReadPosition } from '../data/reads.ts';
import { limits } from '#protocol/limits.ts';
import type { MemberReadPosition, ReadPosition, ServerStateless } from '#protocol/stateless.ts';
import { RateLimiter } from '../rate-limiter.ts';
import { Lookups } from '../db/lookups.ts';
import type { CollabContext } from './authentication.ts';
import type { ClientStatelessHandlers, HandlesStateless } from './stateless-router.ts';
import type { EventBus } from '../events/bus.ts';

/** How long a reported position waits to be written with the others that arrive meanwhile. */
const READ_BATCH_MS = 250;

/** A reported position waiting for the next write, with the room to tell once it is stored. */
interface PendingRead {
	position: RoomReadPosition;
	document: Document;
}

/**
 * Read receipts: each member's read position per room, kept in Postgres (so every device of a user, and every
 * node, agrees) and passed around as stateless messages (`read` in, `reads` out; see stateless.ts). Positions
 * only move forward. Not in the room document: an append-only map would grow with every read.
 *
 * After a message, every member who sees it reports a read within moments, so positions are written in batches:
 * what arrives within READ_BATCH_MS goes to Postgres in one statement, and each room hears the positions that
 * moved in one message, instead of one write and one message per reader.
 */
export class ReadReceipts implements Extension, HandlesStateless {
	readonly extensionName = 'read-receipts';
	readonly #db: Db;
	/** Every member's position in the rooms of the connections that reported in one turn, read together. */
	readonly #positions: Lookups<string, MemberReadPosition[]>;
	readonly #log: Logger;
	readonly #limiter = new RateLimiter(limits.readsPer10s, 10_000);
	/** Connections that got every member's position already. */
	readonly #answered = new WeakSet<object>();
	readonly #bus: EventBus;
	readonly #pending = new Map<string, PendingRead>();
	#timer: NodeJS.Timeout | undefined;

	constructor(db: Db, log: Logger, bus: EventBus) {
		this.#db = db;
		this.#positions = new Lookups({
			find: (roomIds) => reads.lists(db, roomIds),
			idOf: (roomId) => roomId.toLowerCase(),
			missing: [],
		});
		this.#bus = bus;
		this.#log = log.child({ component: 'read-receipts' });
	}

	readonly statelessHandlers: ClientStatelessHandlers = {
		read: (message, payload) => this.#read(message.position, payload),
	};

	async #read(
		position: ReadPosition | null,
		{ connection, document, documentName }: onStatelessPayload,
	): Promise<void> {
		const context = connection.context as CollabContext;
		if (context.userChannel) return;
		if (this.#limiter.take(`${context.user.id} ${documentName}`) > 0) {
			this.#log.debug(
				{ userId: context.user.id, roomId: context.roomId },
				'read position dropped: rate limited',
			);
			return;
		}
		if (position && Date.parse(position.at) > Date.now() + limits.maxClockSkewMs) {
			this.#log.warn(
				{ userId: context.user.id, roomId: context.roomId },
				'read position in the future ignored',
			);
			return;
		}
		try {
			if (position !== null && !connection.readOnly)
				this.#queue({ roomId: context.roomId, userId: context.user.id, ...position }, document);
			// Every position once per connection; after that only the ones that move (broadcast by #flush).
			if (!this.#answered.has(connection)) {
				this.#answered.add(connection);
				const all = await this.#positions.get(context.roomId);
				connection.sendStateless(JSON.stringify({ type: 'reads', reads: all } satisfies ServerStateless));
			}
		} catch (error) {
			this.#log.warn(
				{ err: error, userId: context.user.id, roomId: context.roomId },
				'read positions not sent',
			);
		}
	}

	/** Keeps the furthest reported position per room and member until the next write. */
	#queue(position: RoomReadPosition, document: Document): void {
		const key = `${position.roomId} ${position.userId}`;
		const held = this.#pending.get(key)?.position;
		const [at, heldAt] = [Date.parse(position.at), held ? Date.parse(held.at) : -Infinity];
		const later = at > heldAt || (at === heldAt && position.clientMsgId > (held?.clientMsgId ?? ''));
		if (later) this.#pending.set(key, { position, document });
		this.#timer ??= setTimeout(() => void this.flush(), READ_BATCH_MS);
	}

	/** Writes the positions waiting, and tells each room the ones that moved. */
	async flush(): Promise<void> {
		clearTimeout(this.#timer);
		this.#timer = undefined;
		if (this.#pending.size === 0) return;
		// In key order: two batches in flight at once lock their rows in the same order, so never deadlock.
		const batch = [...this.#pending.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, read]) => read);
		this.#pending.clear();
		try {
			const moved = await reads.advanceAll(
				this.#db,
				batch.map((p) => p.position),
			);
			const rooms = new Map(batch.map((p) => [p.position.roomId, p.document]));
			const byRoom = Map.groupBy(moved, (p) => p.roomId);
			for (const [roomId, positions] of byRoom) {
				// Every node's connections to the room, through Redis when there are several nodes. The readers
				// hear their own positions too: one message for the whole room, and a position no further than
				// theirs changes nothing.
				rooms.get(roomId)?.broadcastStateless(
					JSON.stringify({
						type: 'reads',
						reads: positions.map(({ userId, at, clientMsgId }) => ({ userId, at, clientMsgId })),
					} satisfies ServerStateless),
				);
			}
			// Each reader's unread count changes on every device (their user channels).
			await Promise.all(moved.map((p) => this.#bus.publish({ type: 'read', ...p })));
		} catch (error) {
			// A read position is not worth failing anything for; the next one carries the same news.
			this.#log.warn({ err: error, positions: batch.length }, 'read positions not stored');
		}
	}
}

import type { Extension, onStatelessPayload } from '@hocuspocus/server';
import type { Logger } from 'pino';
import type { Db } from '../db/index.ts';
import * as reads from '../data/reads.ts';
import { limits } from '#protocol/limits.ts';
import type { ReadPosition, ServerStateless } from '#protocol/stateless.ts';
import { RateLimiter } from '../rate-limiter.ts';
import type { CollabContext } from './authentication.ts';
import type { ClientStatelessHandlers, HandlesStateless } from './stateless-router.ts';
import type { EventBus } from '../events/bus.ts';

/**
 * Read receipts: each member's read position per room, kept in Postgres (so every device of a user, and every
 * node, agrees) and passed around as stateless messages (`read` in, `reads` out; see stateless.ts). Positions
 * only move forward. Not in the room document: an append-only map would grow with every read.
 */
export class ReadReceipts implements Extension, HandlesStateless {
	readonly extensionName = 'read-receipts';
	readonly #db: Db;
	readonly #log: Logger;
	readonly #limiter = new RateLimiter(limits.readsPer10s, 10_000);
	/** Connections that got every member's position already. */
	readonly #answered = new WeakSet<object>();
	readonly #bus: EventBus;

	constructor(db: Db, log: Logger, bus: EventBus) {
		this.#db = db;
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
			const moved =
				position !== null && !connection.readOnly
					? await reads.advance(this.#db, context.roomId, { userId: context.user.id, ...position })
					: false;
			// Every position once per connection; after that only the ones that move (broadcast below).
			if (!this.#answered.has(connection)) {
				this.#answered.add(connection);
				const all = await reads.list(this.#db, context.roomId);
				connection.sendStateless(JSON.stringify({ type: 'reads', reads: all } satisfies ServerStateless));
			}
			if (moved) {
				// The reader's unread count changes on every device (their user channels).
				await this.#bus.publish({ type: 'read', roomId: context.roomId, userId: context.user.id });
			}
			if (moved && position) {
				// Every node's connections to the room, through Redis when there are several nodes.
				document.broadcastStateless(
					JSON.stringify({
						type: 'reads',
						reads: [{ userId: context.user.id, ...position }],
					} satisfies ServerStateless),
					(other) => other !== connection,
				);
			}
		} catch (error) {
			// A read position is not worth failing the connection for; the next one carries the same news.
			this.#log.warn(
				{ err: error, userId: context.user.id, roomId: context.roomId },
				'read position not stored',
			);
		}
	}
}

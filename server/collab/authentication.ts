import { randomUUID } from 'node:crypto';
import type { Extension, onAuthenticatePayload, onDisconnectPayload } from '@hocuspocus/server';
import type { Logger } from 'pino';
import type { Db } from '../db/index.ts';
import * as rooms from '../data/rooms.ts';
import * as users from '../data/users.ts';
import { TokenError, type TokenService } from '../auth/tokens.ts';
import { moderates, type Role } from '../../src/lib/protocol/api.ts';
import { collabRejections } from '../../src/lib/protocol/errors.ts';
import { roomIdFromDocumentName } from '../../src/lib/protocol/ids.ts';
import type { Metrics } from '../metrics.ts';
import { inSpan } from '../tracing.ts';

/** What every connection to a room carries once authenticated. */
export interface CollabContext {
	user: { id: string; name: string };
	roomId: string;
	role: Role;
	/** May delete anyone's message (see `moderates`). */
	moderator: boolean;
	connectionId: string;
}

/**
 * Checks the access JWT and the membership of `room:<id>`; `readonly` members connect read-only.
 * A refusal is sent to the client as a permission-denied message with the reason.
 */
export class Authentication implements Extension {
	readonly extensionName = 'authentication';
	readonly priority = 1000;
	readonly #db: Db;
	readonly #tokens: TokenService;
	readonly #log: Logger;
	readonly #documentsPerConnection: number;
	/** Rooms open per WebSocket: one socket multiplexes many documents. */
	readonly #openPerSocket = new Map<string, number>();

	readonly #metrics: Metrics | undefined;

	constructor(
		db: Db,
		tokens: TokenService,
		log: Logger,
		options: { documentsPerConnection: number; metrics?: Metrics },
	) {
		this.#db = db;
		this.#tokens = tokens;
		this.#log = log.child({ component: 'collab-auth' });
		this.#documentsPerConnection = options.documentsPerConnection;
		this.#metrics = options.metrics;
	}

	onAuthenticate(payload: onAuthenticatePayload): Promise<CollabContext> {
		return inSpan('chat.authenticate', { attributes: { 'chat.channel': 'collab' } }, () =>
			this.#authenticate(payload),
		);
	}

	async #authenticate({
		token,
		documentName,
		connectionConfig,
		socketId,
	}: onAuthenticatePayload): Promise<CollabContext> {
		let user;
		try {
			user = await this.#tokens.verifyAccess(token ?? '');
		} catch (error) {
			const rejection =
				error instanceof TokenError && error.code === 'token_expired'
					? collabRejections.tokenExpired
					: collabRejections.unauthorized;
			this.#log.info({ socketId, reason: rejection.reason }, 'collab connection refused');
			this.#metrics?.authFailures.inc({
				channel: 'collab',
				reason: rejection === collabRejections.tokenExpired ? 'token_expired' : 'token_invalid',
			});
			throw rejection;
		}
		const roomId = roomIdFromDocumentName(documentName);
		if (!roomId) {
			this.#log.info(
				{ socketId, userId: user.userId, reason: 'unknown-document' },
				'collab connection refused',
			);
			throw collabRejections.unknownDocument;
		}
		const membership = await rooms.membershipOf(this.#db, roomId, user.userId);
		if (!membership) {
			const rejection = (await rooms.exists(this.#db, roomId))
				? collabRejections.notAMember
				: collabRejections.unknownDocument;
			this.#log.info(
				{ socketId, userId: user.userId, roomId, reason: rejection.reason },
				'collab connection refused',
			);
			if (rejection === collabRejections.notAMember)
				this.#metrics?.authFailures.inc({ channel: 'collab', reason: 'not_a_member' });
			throw rejection;
		}
		const open = this.#openPerSocket.get(socketId) ?? 0;
		if (open >= this.#documentsPerConnection) {
			this.#log.warn(
				{ socketId, userId: user.userId, open, reason: 'too-many-documents' },
				'collab connection refused',
			);
			throw collabRejections.tooManyDocuments;
		}
		this.#openPerSocket.set(socketId, open + 1);
		const { role, isGroup } = membership;
		connectionConfig.readOnly = role === 'readonly';
		await users.touchLastSeen(this.#db, user.userId);
		return {
			user: { id: user.userId, name: user.name },
			roomId,
			role,
			moderator: moderates(role, isGroup),
			connectionId: randomUUID(),
		};
	}

	/** "Last seen" is the last time a user had a room open. */
	async onDisconnect({ context, socketId }: onDisconnectPayload<CollabContext>): Promise<void> {
		const open = (this.#openPerSocket.get(socketId) ?? 1) - 1;
		if (open > 0) this.#openPerSocket.set(socketId, open);
		else this.#openPerSocket.delete(socketId);
		if (!context?.user) return;
		await users.touchLastSeen(this.#db, context.user.id).catch((error: unknown) => {
			// Presence bookkeeping only: a failure here must not disturb the disconnect.
			this.#log.warn({ err: error, userId: context.user.id }, 'could not record last seen');
		});
	}
}

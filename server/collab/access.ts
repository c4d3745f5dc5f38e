import type {
	beforeSyncPayload,
	Connection,
	connectedPayload,
	Document,
	Extension,
	onDisconnectPayload,
} from '@hocuspocus/server';
import type { Logger } from 'pino';
import type { Db } from '../db/index.ts';
import * as sessions from '../data/sessions.ts';
import { membershipLookups, type MembershipLookups } from '../data/memberships.ts';
import type { ClusterEvent, EventBus } from '../events/bus.ts';
import { collabRejections } from '#protocol/errors.ts';
import { roomDocumentName } from '#protocol/ids.ts';
import type { UserChannelMessage } from '#protocol/user-channel.ts';
import type { CollabContext } from './authentication.ts';

/** The server asks an open connection for a fresh token this long before its token expires (see #arm). */
const RENEW_AHEAD_MS = 30_000;

type Rejection = { code: number; reason: string };

/**
 * Continuous authorization: what a connection was allowed at connect time is withdrawn on every node the moment
 * it changes (docs/security.md, "Revocation").
 *
 * - A membership removed or a role changed (cluster event `membership`): that user's connections to the room are
 *   made read-only at once (Hocuspocus then applies nothing they send) and closed with `not-a-member` or
 *   `role-changed`; the client reopens with its new rights, or shows that it was removed.
 * - Sessions ended (`sessions-ended`: sign-out, password change, deleted account): every connection opened with
 *   one of those sessions' tokens closes with `session-ended`, and its WebSocket after it.
 * - An access token expires while its connection is open: the server asks for a new one (Hocuspocus's token
 *   sync) 30 s ahead (halfway, for tokens that live less than a minute); a valid token of the same user and a live session extends the connection, otherwise it
 *   closes with `token-expired` when the old token expires. Updates that arrive after the expiry are refused.
 * - When this node may have missed events (Redis came back), every open connection is checked again against the
 *   database.
 *
 * These close connections; what makes a write after a removal impossible to store is the membership check inside
 * the durable append itself (migrations/0005), which holds even for a node that never hears of the change.
 */
export class Access implements Extension {
	readonly extensionName = 'access';
	/** Before persistence: a revoked connection's update is refused before anything judges or stores it. */
	readonly priority = 900;
	readonly #sessionLive: (sessionId: string, userId: string) => Promise<boolean>;
	readonly #memberships: MembershipLookups;
	readonly #log: Logger;
	readonly #documents: () => ReadonlyMap<string, Document>;
	readonly #timers = new Map<CollabContext, ReturnType<typeof setTimeout>>();

	constructor(deps: { db: Db; log: Logger; bus: EventBus; documents: () => ReadonlyMap<string, Document> }) {
		this.#sessionLive = sessions.liveness(deps.db);
		this.#memberships = membershipLookups(deps.db);
		this.#log = deps.log.child({ component: 'access' });
		this.#documents = deps.documents;
		deps.bus.subscribe((event) => this.#onEvent(event));
		deps.bus.onResync(() => {
			void this.#recheckAll().catch((error: unknown) =>
				this.#log.error({ err: error }, 'rechecking open connections failed'),
			);
		});
	}

	async connected({ connection }: connectedPayload<CollabContext>): Promise<void> {
		this.#arm(connection);
	}

	async onDisconnect({ context }: onDisconnectPayload<CollabContext>): Promise<void> {
		if (!context) return;
		clearTimeout(this.#timers.get(context));
		this.#timers.delete(context);
	}

	async beforeSync({ connection }: beforeSyncPayload<CollabContext>): Promise<void> {
		const context = connection.context as CollabContext;
		if (context.revoked) throw collabRejections.notAMember;
		if (context.expiresAt > 0 && Date.now() >= context.expiresAt) {
			this.#revoke(connection, collabRejections.tokenExpired);
			throw collabRejections.tokenExpired;
		}
	}

	/** (Re)arms a connection's expiry timer: ask for a new token ahead of the expiry, close at the expiry. */
	#arm(connection: Connection): void {
		const context = connection.context as CollabContext;
		clearTimeout(this.#timers.get(context));
		if (!context.expiresAt) return;
		// The expiry a token was last asked for, and the lifetime the current token had left when it came: a token
		// is asked for RENEW_AHEAD_MS before it expires, or halfway through when it lives shorter than twice that.
		let askedFor = 0;
		let knownExpiry = 0;
		let lifetime = 0;
		const tick = () => {
			if (context.revoked) return;
			const left = context.expiresAt - Date.now();
			if (left <= 0) {
				this.#log.info(
					{ userId: context.user.id, connectionId: context.connectionId },
					'connection closed: its token expired and was not renewed',
				);
				this.#revoke(connection, collabRejections.tokenExpired);
				return;
			}
			if (knownExpiry !== context.expiresAt) {
				knownExpiry = context.expiresAt;
				lifetime = left;
			}
			const ahead = Math.min(RENEW_AHEAD_MS, lifetime / 2);
			if (left <= ahead && askedFor !== context.expiresAt) {
				askedFor = context.expiresAt;
				connection.requestToken();
			}
			const next = left > ahead ? left - ahead : left;
			this.#timers.set(context, setTimeout(tick, Math.min(next, 2 ** 31 - 1)).unref());
		};
		tick();
	}

	#onEvent(event: ClusterEvent): void {
		if (event.type === 'membership') {
			const document = this.#documents().get(roomDocumentName(event.roomId));
			if (!document) return;
			for (const connection of document.getConnections()) {
				const context = connection.context as CollabContext;
				if (context.user.id !== event.userId) continue;
				if (event.role === null) this.#revoke(connection, collabRejections.notAMember);
				else if (event.role !== context.role) this.#revoke(connection, collabRejections.roleChanged);
			}
		} else if (event.type === 'sessions-ended') {
			const ends = (context: CollabContext) =>
				context.user.id === event.userId &&
				(event.sessionId
					? context.sessionId === event.sessionId
					: !event.exceptSessionId || context.sessionId !== event.exceptSessionId);
			const sockets = new Set<{ close(code?: number, reason?: string): void }>();
			for (const document of this.#documents().values()) {
				for (const connection of document.getConnections()) {
					const context = connection.context as CollabContext;
					if (!ends(context)) continue;
					if (context.userChannel) {
						const message: UserChannelMessage = { type: 'session-ended', reason: event.reason };
						connection.sendStateless(JSON.stringify(message));
					}
					// The reason rides along (`session-ended: password-changed`), so a room can say why at once.
					this.#revoke(connection, {
						code: collabRejections.sessionEnded.code,
						reason: `${collabRejections.sessionEnded.reason}: ${event.reason}`,
					});
					sockets.add(connection.webSocket);
				}
			}
			const { code, reason } = collabRejections.sessionEnded;
			for (const socket of sockets) socket.close(code, reason);
			if (sockets.size > 0)
				this.#log.info(
					{ userId: event.userId, sockets: sockets.size, reason: event.reason },
					'sessions ended',
				);
		}
	}

	/** Withdraws a connection's rights at once (nothing it sends is applied any more), then closes it. */
	#revoke(connection: Connection, rejection: Rejection): void {
		const context = connection.context as CollabContext;
		context.revoked = true;
		connection.readOnly = true;
		clearTimeout(this.#timers.get(context));
		this.#timers.delete(context);
		connection.close({ code: rejection.code, reason: rejection.reason });
	}

	/**
	 * After events may have been missed: every open connection's session and membership, from the database. The
	 * lookups of all connections go at once, gathered into a statement per 500 (a node with 12,000 sockets asked
	 * 24,000 questions one after the other, and a revocation it missed held for as long).
	 */
	async #recheckAll(): Promise<void> {
		let closed = 0;
		const open = [...this.#documents().values()].flatMap((document) => [...document.getConnections()]);
		await Promise.all(
			open.map(async (connection) => {
				const context = connection.context as CollabContext;
				if (context.revoked) return;
				if (context.sessionId && !(await this.#sessionLive(context.sessionId, context.user.id))) {
					if (context.revoked) return;
					this.#revoke(connection, collabRejections.sessionEnded);
					closed++;
					return;
				}
				if (context.userChannel) return;
				const role = (await this.#memberships.get({ roomId: context.roomId, userId: context.user.id }))?.role;
				if (context.revoked || role === context.role) return;
				this.#revoke(connection, role ? collabRejections.roleChanged : collabRejections.notAMember);
				closed++;
			}),
		);
		this.#log.info({ closed }, 'open connections rechecked after missed events');
	}
}

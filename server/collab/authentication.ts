import { flatUuid } from '../ids.ts';
import type {
	Extension,
	onAuthenticatePayload,
	onDisconnectPayload,
	onTokenSyncPayload,
} from '@hocuspocus/server';
import type { Logger } from 'pino';
import type { Db } from '../db/index.ts';
import * as rooms from '../data/rooms.ts';
import { membershipLookups, type MembershipLookups } from '../data/memberships.ts';
import { TokenError, type AccessClaims, type TokenService } from '../auth/tokens.ts';
import { moderates, type Role } from '#protocol/api.ts';
import { collabRejections } from '#protocol/errors.ts';
import { roomIdFromDocumentName } from '#protocol/ids.ts';
import { OLDEST_CLIENT_PROTOCOL, PROTOCOL_PARAMETER } from '#protocol/version.ts';
import { userIdFromDocumentName } from '#protocol/user-channel.ts';
import type { Metrics } from '../metrics.ts';
import { FloodLog, isRefusal } from '../log.ts';
import { LastSeen } from './last-seen.ts';
import { RateLimiter } from '../rate-limiter.ts';
import { inSpan } from '../tracing.ts';

/** A user's room logins handled at once on a node (the rest wait their turn). */
const LOGINS_AT_ONCE = 2;

/** What every connection carries once authenticated. */
export interface CollabContext {
	user: { id: string; name: string };
	/** The room (empty on a user channel). */
	roomId: string;
	role: Role;
	/** May delete anyone's message (see `moderates`). */
	moderator: boolean;
	connectionId: string;
	/** The connection is the user's own channel (`user:<id>`), not a room. */
	userChannel: boolean;
	/** The protocol version the client said it follows (`?protocol=`); null for one that said none (a bot). */
	protocol: number | null;
	/** The session of the token it was opened (or last renewed) with; absent for tokens older than sessions. */
	sessionId?: string;
	/** When that token expires (ms since the epoch): its authority ends then unless a new token arrives. */
	expiresAt: number;
	/** Set the moment a change of membership or session revokes the connection, before it is closed. */
	revoked?: boolean;
}

/**
 * Checks the access JWT and the membership of `room:<id>`; `readonly` members connect read-only.
 * A refusal is sent to the client as a permission-denied message with the reason.
 */
export class Authentication implements Extension {
	readonly extensionName = 'authentication';
	readonly priority = 1000;
	readonly #db: Db;
	/** Memberships of the turn's logins, looked up together. */
	readonly #memberships: MembershipLookups;
	readonly #tokens: TokenService;
	readonly #log: Logger;
	readonly #documentsPerConnection: number;
	/** Rooms open per WebSocket: one socket multiplexes many documents. */
	readonly #openPerSocket = new Map<string, number>();
	readonly #lastSeen: LastSeen;
	/** Each user's room logins in progress on this node, and those waiting for their turn. */
	readonly #loginTurns = new Map<string, { active: number; waiting: (() => void)[] }>();
	/** Room logins per user on this node, counted before the database is asked anything. */
	readonly #loginsPerUser: RateLimiter;
	readonly #refusals: FloodLog;

	readonly #metrics: Metrics | undefined;

	constructor(
		db: Db,
		tokens: TokenService,
		log: Logger,
		options: { documentsPerConnection: number; loginsPer10s: number; metrics?: Metrics },
	) {
		this.#db = db;
		this.#memberships = membershipLookups(db);
		this.#tokens = tokens;
		this.#log = log.child({ component: 'collab-auth' });
		this.#lastSeen = new LastSeen(db, this.#log);
		this.#documentsPerConnection = options.documentsPerConnection;
		this.#metrics = options.metrics;
		this.#loginsPerUser = new RateLimiter(options.loginsPer10s, 10_000);
		this.#refusals = new FloodLog(this.#log, {
			summary: 'more room logins were refused than are logged one by one; counted by reason',
		});
	}

	onAuthenticate(payload: onAuthenticatePayload): Promise<CollabContext> {
		return inSpan('chat.authenticate', { attributes: { 'chat.channel': 'collab' } }, () =>
			this.#authenticate(payload).catch((error: unknown) => {
				if (isRefusal(error)) throw error;
				// The database could not answer (down, timed out, read-only): a refusal to retry soon, never a
				// verdict on the user's rights (Hocuspocus would answer a bare error with `permission-denied`).
				this.#refusals.warn(
					{ err: error, socketId: payload.socketId, reason: collabRejections.unavailable.reason },
					'collab connection refused: cannot check the membership',
				);
				this.#metrics?.updatesRejected.inc({ reason: collabRejections.unavailable.reason });
				throw collabRejections.unavailable;
			}),
		);
	}

	async #authenticate({
		token,
		documentName,
		connectionConfig,
		socketId,
		requestParameters,
	}: onAuthenticatePayload): Promise<CollabContext> {
		const protocol = this.#checkProtocol(requestParameters.get(PROTOCOL_PARAMETER), socketId);
		const claims = await this.#claims(token ?? '', socketId, true);
		const context = await this.#inTurn(claims.userId, () =>
			this.#admit(claims, documentName, connectionConfig, socketId),
		);
		return { ...context, protocol };
	}

	/**
	 * A client that says its protocol version must speak one this server accepts (its version is returned); one
	 * that says none is a bot (null).
	 */
	#checkProtocol(given: string | null, socketId: string): number | null {
		if (given === null) return null;
		const version = /^[1-9][0-9]{0,5}$/.test(given) ? Number(given) : 0;
		if (version >= OLDEST_CLIENT_PROTOCOL) return version;
		const reason = `${collabRejections.outdatedClient.reason}: this app speaks protocol ${version || 'unknown'}, the server needs ${OLDEST_CLIENT_PROTOCOL} or later; reload to update`;
		this.#refusals.info(
			{ socketId, reason: collabRejections.outdatedClient.reason },
			'collab connection refused',
		);
		throw { ...collabRejections.outdatedClient, reason };
	}

	async #admit(
		user: AccessClaims,
		documentName: string,
		connectionConfig: onAuthenticatePayload['connectionConfig'],
		socketId: string,
	): Promise<Omit<CollabContext, 'protocol'>> {
		await this.#live(user, socketId);
		const channelOf = userIdFromDocumentName(documentName);
		if (channelOf) {
			// A user channel: its owner only, read-only (the server alone speaks on it).
			if (channelOf !== user.userId) {
				this.#refusals.info(
					{ socketId, userId: user.userId, reason: 'not-your-channel' },
					'collab connection refused',
				);
				throw collabRejections.unknownDocument;
			}
			this.#countOpen(socketId, user.userId);
			connectionConfig.readOnly = true;
			// The app is open: that is being seen, even with no room open.
			this.#lastSeen.seen(user.userId);
			return {
				user: { id: user.userId, name: user.name },
				roomId: '',
				role: 'readonly',
				moderator: false,
				connectionId: flatUuid(),
				userChannel: true,
				sessionId: user.sessionId,
				expiresAt: user.expiresAt ?? 0,
			};
		}
		const roomId = roomIdFromDocumentName(documentName);
		if (!roomId) {
			this.#refusals.info(
				{ socketId, userId: user.userId, reason: 'unknown-document' },
				'collab connection refused',
			);
			throw collabRejections.unknownDocument;
		}
		const membership = await this.#memberships.get({ roomId, userId: user.userId });
		if (!membership) {
			const rejection = (await rooms.exists(this.#db, roomId))
				? collabRejections.notAMember
				: collabRejections.unknownDocument;
			this.#refusals.info(
				{ socketId, userId: user.userId, roomId, reason: rejection.reason },
				'collab connection refused',
			);
			if (rejection === collabRejections.notAMember)
				this.#metrics?.authFailures.inc({ channel: 'collab', reason: 'not_a_member' });
			throw rejection;
		}
		this.#countOpen(socketId, user.userId);
		const { role, isGroup } = membership;
		connectionConfig.readOnly = role === 'readonly';
		this.#lastSeen.seen(user.userId);
		return {
			user: { id: user.userId, name: user.name },
			roomId,
			role,
			moderator: moderates(role, isGroup),
			connectionId: flatUuid(),
			userChannel: false,
			sessionId: user.sessionId,
			expiresAt: user.expiresAt ?? 0,
		};
	}

	/**
	 * The token must be valid and its session live. A database that cannot answer is a refusal to retry soon
	 * (`storage-unavailable`), not a verdict on the token.
	 */
	async #verify(token: string, socketId: string) {
		const claims = await this.#claims(token, socketId);
		await this.#live(claims, socketId);
		return claims;
	}

	/** The token's signature and claims (no database); a room login also counts against the user's budget. */
	async #claims(token: string, socketId: string, login = false) {
		let claims: AccessClaims;
		try {
			claims = await this.#tokens.verifyAccess(token);
		} catch (error) {
			throw this.#refusal(error, socketId);
		}
		if (login) {
			const wait = this.#loginsPerUser.take(claims.userId);
			if (wait > 0) {
				this.#refusals.warn(
					{ socketId, userId: claims.userId, reason: 'logins-per-user' },
					'collab connection refused',
				);
				throw {
					...collabRejections.rateLimited,
					reason: `rate-limited: try again in ${Math.ceil(wait / 1000)} s`,
				};
			}
		}
		return claims;
	}

	/** The token's session is still live (a database read). */
	async #live(claims: AccessClaims, socketId: string): Promise<void> {
		try {
			await this.#tokens.assertSessionLive(claims);
		} catch (error) {
			throw this.#refusal(error, socketId);
		}
	}

	#refusal(error: unknown, socketId: string): { code: number; reason: string } {
		if (!(error instanceof TokenError)) {
			this.#refusals.warn(
				{ err: error, socketId, reason: collabRejections.unavailable.reason },
				'collab connection refused: cannot check the session',
			);
			return collabRejections.unavailable;
		}
		const rejection =
			error.code === 'token_expired'
				? collabRejections.tokenExpired
				: error.code === 'session_ended'
					? collabRejections.sessionEnded
					: collabRejections.unauthorized;
		this.#refusals.info({ socketId, reason: rejection.reason }, 'collab connection refused');
		this.#metrics?.authFailures.inc({
			channel: 'collab',
			reason: error.code === 'token_invalid' ? 'token_invalid' : error.code,
		});
		return rejection;
	}

	/**
	 * Runs one user's room logins at most LOGINS_AT_ONCE at a time on this node: a client that sends logins from
	 * many sockets at once waits on itself, and everyone else's logins and writes find the database free.
	 */
	async #inTurn<T>(userId: string, work: () => Promise<T>): Promise<T> {
		const turn = this.#loginTurns.get(userId) ?? { active: 0, waiting: [] as (() => void)[] };
		this.#loginTurns.set(userId, turn);
		if (turn.active >= LOGINS_AT_ONCE) await new Promise<void>((resolve) => turn.waiting.push(resolve));
		turn.active++;
		try {
			return await work();
		} finally {
			turn.active--;
			const next = turn.waiting.shift();
			if (next) next();
			else if (turn.active === 0) this.#loginTurns.delete(userId);
		}
	}

	#countOpen(socketId: string, userId: string): void {
		const open = this.#openPerSocket.get(socketId) ?? 0;
		if (open >= this.#documentsPerConnection) {
			this.#refusals.warn(
				{ socketId, userId, open, reason: 'too-many-documents' },
				'collab connection refused',
			);
			throw collabRejections.tooManyDocuments;
		}
		this.#openPerSocket.set(socketId, open + 1);
	}

	/**
	 * A new token on an open connection (the server asks for one before the old one expires; see access.ts): it
	 * must be the same user's, valid and of a live session. It extends the connection's authority; anything else
	 * ends the connection.
	 */
	async onTokenSync({ token, connection }: onTokenSyncPayload): Promise<void> {
		const context = connection.context as CollabContext;
		const claims = await this.#verify(token, context.connectionId);
		if (claims.userId !== context.user.id) throw collabRejections.unauthorized;
		context.expiresAt = claims.expiresAt ?? context.expiresAt;
		context.sessionId = claims.sessionId;
	}

	/** "Last seen" is the last time a user had the app (their user channel) or a room open. */
	async onDisconnect({ context, socketId }: onDisconnectPayload<CollabContext>): Promise<void> {
		const open = (this.#openPerSocket.get(socketId) ?? 1) - 1;
		if (open > 0) this.#openPerSocket.set(socketId, open);
		else this.#openPerSocket.delete(socketId);
		if (context?.user) this.#lastSeen.seen(context.user.id);
	}

	/** Writes the "last seen" still queued (shutdown). */
	flush(): Promise<void> {
		return this.#lastSeen.flush();
	}
}

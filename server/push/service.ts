import { createECDH, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import webpush from 'web-push';
import { pushPayload, type PushPayload } from '#protocol/user-channel.ts';
import type { Db } from '../db/index.ts';
import { AppError } from '../errors.ts';
import { loadOrCreateVapidKeys, type VapidKeys } from './keys.ts';

export interface PushOptions {
	/** `mailto:` or `https:` contact for the push services (VAPID `sub`). */
	subject: string;
	/** A fixed key pair from the environment; without it the cluster's pair in `server_keys` is used. */
	keys?: VapidKeys;
	/** How long a push service keeps an undelivered message, in seconds. */
	ttlSeconds?: number;
	/** How long one request to a push service may take. */
	timeoutMs?: number;
}

export interface PushSubscriptionInput {
	endpoint: string;
	keys: { p256dh: string; auth: string };
	previews: boolean;
}

/** A day: a chat message that reaches a phone later than that is no longer news. */
const DEFAULT_TTL_SECONDS = 24 * 60 * 60;
const DEFAULT_TIMEOUT_MS = 10_000;
/** Beyond this many subscriptions a user's oldest one is dropped: each is one outgoing request per push. */
export const MAX_SUBSCRIPTIONS_PER_USER = 20;
/**
 * The plaintext a push may carry. Push services accept 4096 bytes of body (RFC 8291 §4); the encryption adds 86
 * bytes and a record delimiter, and some services are stricter still, so previews are cut to fit well below that.
 */
const MAX_PLAINTEXT_BYTES = 3000;

interface SubscriptionRow {
	id: string;
	endpoint: string;
	p256dh: string;
	auth: string;
	previews: boolean;
}

type Outcome = 'sent' | 'gone' | 'failed';

/**
 * Web Push to the browsers of users who have no device connected (RFC 8030 delivery, RFC 8291 encryption,
 * RFC 8292 VAPID), through `web-push`. `web-push` builds each request (encrypted body, VAPID and TTL headers)
 * and this class sends it with `fetch`: the library's own sender speaks only https, and the tests' push service
 * is plain http on 127.0.0.1. A push is best effort: failures are logged and counted, never thrown.
 */
export class PushService {
	readonly #db: Db;
	readonly #log: Logger;
	readonly #options: PushOptions;
	#keys: VapidKeys | undefined;
	#ready: Promise<this> | undefined;

	constructor(db: Db, log: Logger, options: PushOptions) {
		this.#db = db;
		this.#log = log.child({ component: 'push' });
		this.#options = options;
	}

	/** Loads (or, on a cluster's first boot, creates) the VAPID keys. Call once after migrations. */
	init(): Promise<this> {
		return (this.#ready ??= (async () => {
			this.#keys = this.#options.keys ?? (await loadOrCreateVapidKeys(this.#db));
			return this;
		})());
	}

	/** The VAPID public key that browsers pass to `pushManager.subscribe` as `applicationServerKey`. */
	publicKey(): string {
		return this.#requireKeys().publicKey;
	}

	/**
	 * Stores a browser's subscription for `userId`. An endpoint is one browser profile's: subscribed again, by the
	 * same user or by whoever signed in there since, it is updated and moves to that user.
	 * Throws a 400 `AppError` when `keys.p256dh` is not a point on P-256 (nothing could be encrypted for it).
	 */
	async subscribe(userId: string, subscription: PushSubscriptionInput): Promise<void> {
		if (!isP256Point(subscription.keys.p256dh)) {
			throw new AppError(
				'validation_failed',
				'invalid request body: keys.p256dh: expected a point on the P-256 curve',
				[{ path: 'keys.p256dh', message: 'expected a point on the P-256 curve' }],
			);
		}
		await this.#db.transaction(async (tx) => {
			await tx.query(
				`INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, previews)
				 VALUES ($1, $2, $3, $4, $5, $6)
				 ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, p256dh = excluded.p256dh,
					auth = excluded.auth, previews = excluded.previews`,
				[
					randomUUID(),
					userId,
					subscription.endpoint,
					subscription.keys.p256dh,
					subscription.keys.auth,
					subscription.previews,
				],
			);
			await tx.query(
				`DELETE FROM push_subscriptions WHERE id IN (
					SELECT id FROM push_subscriptions WHERE user_id = $1
					ORDER BY created_at DESC, id OFFSET $2)`,
				[userId, MAX_SUBSCRIPTIONS_PER_USER],
			);
		});
	}

	/**
	 * Removes `userId`'s subscription at `endpoint`. Someone else's subscription is left alone; either way the
	 * answer is the same, so the call tells nobody whether an endpoint is subscribed. Returns whether one went.
	 */
	async unsubscribe(userId: string, endpoint: string): Promise<boolean> {
		const { rowCount } = await this.#db.query(
			'DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2',
			[userId, endpoint],
		);
		return rowCount > 0;
	}

	/**
	 * Pushes `payload` to every subscription of `userId`, without `text` to those that did not ask for previews.
	 * Mentions go out with urgency `high`. A subscription the push service reports gone (404, 410) is removed;
	 * any other failure is logged (never the payload, never the endpoint's path or keys). Never throws for a push
	 * failure. Returns how many pushes the push services accepted and how many subscriptions were removed.
	 */
	async sendToUser(userId: string, payload: PushPayload): Promise<{ sent: number; removed: number }> {
		const keys = this.#requireKeys();
		const checked = pushPayload.safeParse(payload);
		if (!checked.success) {
			this.#log.error({ userId, issues: checked.error.issues.length }, 'push payload invalid; nothing sent');
			return { sent: 0, removed: 0 };
		}
		let rows: SubscriptionRow[];
		try {
			({ rows } = await this.#db.query<SubscriptionRow>(
				'SELECT id, endpoint, p256dh, auth, previews FROM push_subscriptions WHERE user_id = $1',
				[userId],
			));
		} catch (error) {
			this.#log.warn({ err: error, userId }, 'push skipped: could not read subscriptions');
			return { sent: 0, removed: 0 };
		}
		const outcomes = await Promise.all(
			rows.map((row) => this.#sendOne(keys, row, bodyFor(checked.data, row.previews))),
		);
		const gone = rows.filter((_, i) => outcomes[i] === 'gone').map((row) => row.id);
		const sent = outcomes.filter((o) => o === 'sent').length;
		let removed = 0;
		try {
			if (gone.length > 0) {
				removed = (await this.#db.query('DELETE FROM push_subscriptions WHERE id = ANY($1::uuid[])', [gone]))
					.rowCount;
			}
			const delivered = rows.filter((_, i) => outcomes[i] === 'sent').map((row) => row.id);
			if (delivered.length > 0) {
				await this.#db.query(
					'UPDATE push_subscriptions SET last_success_at = now() WHERE id = ANY($1::uuid[])',
					[delivered],
				);
			}
		} catch (error) {
			// Bookkeeping only: the pushes went out; a gone subscription is found gone again next time.
			this.#log.warn({ err: error, userId }, 'push bookkeeping failed');
		}
		return { sent, removed };
	}

	async #sendOne(keys: VapidKeys, row: SubscriptionRow, body: PushPayload): Promise<Outcome> {
		const origin = safeOrigin(row.endpoint);
		const log = this.#log.child({ subscriptionId: row.id, pushService: origin });
		try {
			const details = webpush.generateRequestDetails(
				{ endpoint: row.endpoint, keys: { p256dh: row.p256dh, auth: row.auth } },
				fitPayload(body),
				{
					vapidDetails: { subject: this.#options.subject, ...keys },
					TTL: this.#options.ttlSeconds ?? DEFAULT_TTL_SECONDS,
					urgency: body.mention ? 'high' : 'normal',
					// One pending message per room: a phone that was off gets the room's latest, not a backlog.
					topic: body.roomId.replaceAll('-', ''),
					contentEncoding: 'aes128gcm',
				},
			);
			const headers: Record<string, string> = {};
			for (const [name, value] of Object.entries(details.headers)) headers[name] = String(value);
			const response = await fetch(details.endpoint, {
				method: details.method,
				headers,
				body: details.body ? new Uint8Array(details.body) : undefined,
				// A push service answers; it does not send us elsewhere.
				redirect: 'error',
				signal: AbortSignal.timeout(this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
			});
			await response.body?.cancel();
			if (response.ok) return 'sent';
			if (response.status === 404 || response.status === 410) {
				log.info({ status: response.status }, 'push subscription gone; removing it');
				return 'gone';
			}
			log.warn({ status: response.status }, 'push refused by the push service');
			return 'failed';
		} catch (error) {
			log.warn({ err: errorSummary(error) }, 'push failed');
			return 'failed';
		}
	}

	#requireKeys(): VapidKeys {
		if (!this.#keys) throw new Error('PushService.init() has not completed');
		return this.#keys;
	}
}

/** The payload one subscription gets: the message text only where the user asked for previews. */
function bodyFor(payload: PushPayload, previews: boolean): PushPayload {
	if (previews) return payload;
	const withoutText = { ...payload };
	delete withoutText.text;
	return withoutText;
}

/** The JSON to encrypt, with a preview cut (at a character boundary, marked with "…") to fit a push. */
export function fitPayload(payload: PushPayload): string {
	let json = JSON.stringify(payload);
	if (payload.text === undefined) return json;
	let chars = [...payload.text];
	let over = Buffer.byteLength(json) - MAX_PLAINTEXT_BYTES;
	// Every character costs at least one byte, so dropping `over` of them always makes enough room.
	while (over > 0) {
		chars = chars.slice(0, Math.max(0, chars.length - over));
		json = JSON.stringify({ ...payload, text: `${chars.join('')}…` });
		over = chars.length === 0 ? 0 : Buffer.byteLength(json) - MAX_PLAINTEXT_BYTES;
	}
	return json;
}

function isP256Point(base64Url: string): boolean {
	try {
		// Throws unless the bytes are a point on the curve (the length and 0x04 prefix are checked by the schema).
		const ecdh = createECDH('prime256v1');
		ecdh.generateKeys();
		ecdh.computeSecret(Buffer.from(base64Url, 'base64url'));
		return true;
	} catch {
		return false;
	}
}

/** The push service's origin: the endpoint's path is a capability (whoever knows it may push) and stays out of logs. */
function safeOrigin(endpoint: string): string {
	try {
		return new URL(endpoint).origin;
	} catch {
		return 'invalid';
	}
}

function errorSummary(error: unknown): { name: string; message: string; cause?: string } {
	if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
	const cause = error.cause instanceof Error ? error.cause.message : undefined;
	return { name: error.name, message: error.message, ...(cause ? { cause } : {}) };
}

import type { PushPayload } from '../../src/lib/protocol/user-channel.ts';
import {
	createDecipheriv,
	createECDH,
	createPublicKey,
	hkdfSync,
	randomBytes,
	randomUUID,
	verify,
	type ECDH,
} from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A push service for tests, speaking the real protocols, written from the RFCs with `node:crypto` only:
 * RFC 8030 (delivery: a POST to the subscription's URL, `TTL`, `Urgency`, `Topic`, 201 Created / 410 Gone),
 * RFC 8292 (VAPID: `Authorization: vapid t=<ES256 JWT>, k=<public key>`, `aud` = this service's origin) and
 * RFC 8291 + RFC 8188 (the `aes128gcm` encrypted body, decrypted with the subscription's own private key and
 * auth secret). It plays the browser's part too: `subscription()` makes the key pair and auth secret a
 * browser's PushManager would, so whatever decrypts here would decrypt in a browser.
 *
 * Reuse: `const receiver = await PushReceiver.start()`, subscribe `receiver.subscription()` through the API,
 * then `await receiver.waitFor(sub.endpoint, 1)` (or `receiver.payloads(sub.endpoint)`), and
 * `receiver.refusals` says why a request was turned away.
 */

/** What the service accepted for a subscription, in arrival order. */
export interface ReceivedPush {
	/** The decrypted body, parsed as JSON (the raw string when it is not JSON). */
	payload: unknown;
	ttl: number;
	urgency: string | undefined;
	topic: string | undefined;
	/** The VAPID public key the request was signed with (`k`). */
	vapidKey: string;
	/** The JWT's `sub` claim. */
	subject: string;
}

export interface TestSubscription {
	endpoint: string;
	keys: { p256dh: string; auth: string };
}

interface Subscriber {
	ecdh: ECDH;
	auth: Buffer;
	/** When set (as a browser does with `applicationServerKey`), only this VAPID key may push. */
	applicationServerKey?: string;
	answer: 'accept' | 'gone';
	received: ReceivedPush[];
	waiters: (() => void)[];
}

/** A request turned away, and why (for assertions and for debugging a failing test). */
export interface Refusal {
	path: string;
	status: number;
	reason: string;
}

/** RFC 8030 §5: push services must accept at least 4096 bytes of body; this one accepts exactly that. */
const MAX_BODY_BYTES = 4096;
const MAX_JWT_LIFETIME_S = 24 * 60 * 60;

class Refused extends Error {
	readonly status: number;
	constructor(status: number, reason: string) {
		super(reason);
		this.status = status;
	}
}

export class PushReceiver {
	readonly origin: string;
	readonly refusals: Refusal[] = [];
	readonly #server: http.Server;
	readonly #subscribers = new Map<string, Subscriber>();

	private constructor(server: http.Server) {
		this.#server = server;
		this.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
	}

	/** Starts the service on 127.0.0.1, port 0. */
	static async start(): Promise<PushReceiver> {
		const server = http.createServer();
		await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
		const receiver = new PushReceiver(server);
		server.on('request', (request, response) => void receiver.handle(request, response));
		return receiver;
	}

	/** A new subscription with fresh keys, as `PushSubscription.toJSON()` gives it. */
	subscription(options: { applicationServerKey?: string } = {}): TestSubscription {
		const ecdh = createECDH('prime256v1');
		ecdh.generateKeys();
		const auth = randomBytes(16);
		const id = randomUUID();
		this.#subscribers.set(id, {
			ecdh,
			auth,
			applicationServerKey: options.applicationServerKey,
			answer: 'accept',
			received: [],
			waiters: [],
		});
		return {
			endpoint: `${this.origin}/push/${id}`,
			keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
		};
	}

	/** Every push accepted for `endpoint` so far. */
	received(endpoint: string): ReceivedPush[] {
		return [...this.#subscriber(endpoint).received];
	}

	/** The decrypted payloads accepted for `endpoint` so far. */
	payloads(endpoint: string): unknown[] {
		return this.received(endpoint).map((r) => r.payload);
	}

	/** From now on, pushes to `endpoint` are answered `410 Gone` (the user unsubscribed in the browser). */
	answerGone(endpoint: string): void {
		this.#subscriber(endpoint).answer = 'gone';
	}

	/** Resolves once `endpoint` has received `count` pushes in all; rejects after `timeoutMs`. */
	async waitFor(endpoint: string, count: number, timeoutMs = 10_000): Promise<ReceivedPush[]> {
		const subscriber = this.#subscriber(endpoint);
		const deadline = Date.now() + timeoutMs;
		while (subscriber.received.length < count) {
			const left = deadline - Date.now();
			if (left <= 0) {
				throw new Error(
					`expected ${count} push(es), got ${subscriber.received.length}; refusals: ${JSON.stringify(this.refusals)}`,
				);
			}
			await new Promise<void>((resolve) => {
				const timer = setTimeout(resolve, left);
				subscriber.waiters.push(() => {
					clearTimeout(timer);
					resolve();
				});
			});
		}
		return [...subscriber.received];
	}

	close(): Promise<void> {
		this.#server.closeAllConnections();
		return new Promise((resolve) => this.#server.close(() => resolve()));
	}

	#subscriber(endpoint: string): Subscriber {
		const id = endpoint.startsWith(`${this.origin}/push/`)
			? endpoint.slice(`${this.origin}/push/`.length)
			: '';
		const subscriber = this.#subscribers.get(id);
		if (!subscriber) throw new Error(`not a subscription of this receiver: ${endpoint}`);
		return subscriber;
	}

	async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
		const path = request.url ?? '/';
		try {
			const body = await readBody(request);
			const id = /^\/push\/([0-9a-f-]{36})$/.exec(path)?.[1];
			const subscriber = id ? this.#subscribers.get(id) : undefined;
			if (request.method !== 'POST') throw new Refused(405, `method ${request.method}`);
			if (!id || !subscriber) throw new Refused(404, 'no such subscription');
			if (subscriber.answer === 'gone') throw new Refused(410, 'subscription gone');
			const push = this.#accept(request, body, subscriber);
			subscriber.received.push(push);
			for (const wake of subscriber.waiters.splice(0)) wake();
			response.writeHead(201, { location: `/message/${randomUUID()}` }).end();
		} catch (error) {
			const status = error instanceof Refused ? error.status : 400;
			const reason = error instanceof Error ? error.message : String(error);
			this.refusals.push({ path, status, reason });
			response.writeHead(status, { 'content-type': 'text/plain' }).end(reason);
		}
	}

	#accept(request: http.IncomingMessage, body: Buffer, subscriber: Subscriber): ReceivedPush {
		const { key, claims } = verifyVapid(request.headers.authorization, this.origin);
		if (subscriber.applicationServerKey && key !== subscriber.applicationServerKey)
			throw new Refused(403, 'VAPID key is not the subscription’s applicationServerKey');

		const ttlHeader = request.headers.ttl;
		if (typeof ttlHeader !== 'string' || !/^\d+$/.test(ttlHeader))
			throw new Refused(400, `TTL header missing or not a non-negative integer: ${String(ttlHeader)}`);
		const urgency = request.headers.urgency;
		if (urgency !== undefined && !['very-low', 'low', 'normal', 'high'].includes(String(urgency)))
			throw new Refused(400, `bad Urgency: ${String(urgency)}`);
		const topic = request.headers.topic;
		if (topic !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(String(topic)))
			throw new Refused(400, `bad Topic: ${String(topic)}`);
		if (request.headers['content-encoding'] !== 'aes128gcm')
			throw new Refused(
				415,
				`Content-Encoding must be aes128gcm, got ${request.headers['content-encoding']}`,
			);

		const plaintext = decryptPushMessage(body, subscriber.ecdh, subscriber.auth).toString('utf8');
		let payload: unknown = plaintext;
		try {
			payload = JSON.parse(plaintext);
		} catch {
			// Not JSON: recorded as the text it is.
		}
		return {
			payload,
			ttl: Number(ttlHeader),
			urgency: urgency === undefined ? undefined : String(urgency),
			topic: topic === undefined ? undefined : String(topic),
			vapidKey: key,
			subject: claims.sub,
		};
	}
}

function readBody(request: http.IncomingMessage): Promise<Buffer> {
	return new Promise((resolve, reject) => {
		const chunks: Buffer[] = [];
		let size = 0;
		request.on('data', (chunk: Buffer) => {
			size += chunk.length;
			if (size <= MAX_BODY_BYTES) chunks.push(chunk);
		});
		request.on('end', () =>
			size > MAX_BODY_BYTES
				? reject(new Refused(413, `body of ${size} bytes exceeds ${MAX_BODY_BYTES}`))
				: resolve(Buffer.concat(chunks)),
		);
		request.on('error', reject);
	});
}

/**
 * Checks an RFC 8292 `Authorization: vapid t=<JWT>, k=<key>` header: an ES256 JWT whose signature verifies
 * against `k` (an uncompressed P-256 point), whose `aud` is `audience`, whose `exp` lies in the next 24 hours and
 * which names a `sub` contact (mailto: or https:). Throws a 401 refusal otherwise.
 */
export function verifyVapid(
	header: string | undefined,
	audience: string,
): { key: string; claims: { aud: string; exp: number; sub: string } } {
	const match = /^vapid t=([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+), k=([A-Za-z0-9_-]+)$/.exec(
		header ?? '',
	);
	if (!match)
		throw new Refused(401, `no VAPID authorization: ${header === undefined ? 'missing' : 'malformed'}`);
	const [jwt, key] = [match[1] as string, match[2] as string];
	const point = Buffer.from(key, 'base64url');
	if (point.length !== 65 || point[0] !== 0x04)
		throw new Refused(401, 'k is not an uncompressed P-256 point');
	const publicKey = createPublicKey({
		key: {
			kty: 'EC',
			crv: 'P-256',
			x: point.subarray(1, 33).toString('base64url'),
			y: point.subarray(33, 65).toString('base64url'),
		},
		format: 'jwk',
	});
	const [encodedHeader, encodedClaims, signature] = jwt.split('.') as [string, string, string];
	const jwtHeader = JSON.parse(Buffer.from(encodedHeader, 'base64url').toString('utf8')) as { alg?: string };
	if (jwtHeader.alg !== 'ES256') throw new Refused(401, `JWT alg must be ES256, got ${jwtHeader.alg}`);
	// JWS signs "<header>.<claims>"; ES256 signatures are r ‖ s, 32 bytes each (IEEE P1363), not DER.
	const valid = verify(
		'sha256',
		Buffer.from(`${encodedHeader}.${encodedClaims}`),
		{ key: publicKey, dsaEncoding: 'ieee-p1363' },
		Buffer.from(signature, 'base64url'),
	);
	if (!valid) throw new Refused(401, 'JWT signature does not verify against k');
	const claims = JSON.parse(Buffer.from(encodedClaims, 'base64url').toString('utf8')) as Record<
		string,
		unknown
	>;
	if (claims.aud !== audience) throw new Refused(401, `JWT aud ${String(claims.aud)} is not ${audience}`);
	const now = Math.floor(Date.now() / 1000);
	if (typeof claims.exp !== 'number' || claims.exp <= now || claims.exp > now + MAX_JWT_LIFETIME_S + 60)
		throw new Refused(401, `JWT exp ${String(claims.exp)} is not within the next 24 hours`);
	if (typeof claims.sub !== 'string' || !/^(mailto:|https:)/.test(claims.sub))
		throw new Refused(401, `JWT sub must be a mailto: or https: contact, got ${String(claims.sub)}`);
	return { key, claims: { aud: claims.aud, exp: claims.exp, sub: claims.sub } };
}

/** HKDF-SHA-256 (RFC 5869), extract and expand. */
const hkdf = (salt: Buffer, ikm: Buffer, info: Buffer, length: number) =>
	Buffer.from(hkdfSync('sha256', ikm, salt, info, length));

/**
 * Decrypts a Web Push message body for the subscription whose private key is `ua` and auth secret `authSecret`.
 *
 * RFC 8188 framing: `salt (16) ‖ rs (uint32) ‖ idlen (1) ‖ keyid (idlen) ‖ records`; RFC 8291 puts the
 * application server's ephemeral public key in `keyid` and requires a single record. Keys (RFC 8291 §3.3–3.4):
 *   IKM   = HKDF(salt = auth_secret, ikm = ECDH(ua_private, as_public), info = "WebPush: info\0" ‖ ua_public ‖ as_public, 32)
 *   CEK   = HKDF(salt, IKM, "Content-Encoding: aes128gcm\0", 16)
 *   NONCE = HKDF(salt, IKM, "Content-Encoding: nonce\0", 12), XORed with the record's sequence number
 * Each record is AES-128-GCM (16-byte tag last); its plaintext ends with a delimiter (2 for the last record),
 * then zero padding. Throws when anything does not check out.
 */
export function decryptPushMessage(body: Buffer, ua: ECDH, authSecret: Buffer): Buffer {
	if (body.length < 21) throw new Refused(400, 'body shorter than the aes128gcm header');
	const salt = body.subarray(0, 16);
	const rs = body.readUInt32BE(16);
	const idlen = body[20] as number;
	if (rs < 18) throw new Refused(400, `record size ${rs} below 18`);
	if (idlen !== 65)
		throw new Refused(400, `keyid must be the 65-byte application server key, got ${idlen} bytes`);
	const asPublic = body.subarray(21, 21 + idlen);
	const ciphertext = body.subarray(21 + idlen);
	if (ciphertext.length === 0) throw new Refused(400, 'no record');
	if (ciphertext.length > rs) throw new Refused(400, 'a push message must be a single record (RFC 8291 §4)');

	let ecdhSecret: Buffer;
	try {
		ecdhSecret = ua.computeSecret(asPublic);
	} catch {
		throw new Refused(400, 'keyid is not a P-256 public key');
	}
	const uaPublic = ua.getPublicKey();
	const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic]);
	const ikm = hkdf(authSecret, ecdhSecret, keyInfo, 32);
	const cek = hkdf(salt, ikm, Buffer.from('Content-Encoding: aes128gcm\0'), 16);
	const nonce = hkdf(salt, ikm, Buffer.from('Content-Encoding: nonce\0'), 12);

	// One record, sequence number 0: the nonce XOR 0 is the nonce itself.
	if (ciphertext.length < 17) throw new Refused(400, 'record shorter than its tag');
	const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
	decipher.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
	let plaintext: Buffer;
	try {
		plaintext = Buffer.concat([
			decipher.update(ciphertext.subarray(0, ciphertext.length - 16)),
			decipher.final(),
		]);
	} catch {
		throw new Refused(400, 'decryption failed: the record does not authenticate');
	}
	let end = plaintext.length - 1;
	while (end >= 0 && plaintext[end] === 0) end--;
	if (end < 0 || plaintext[end] !== 2) throw new Refused(400, 'last record lacks its padding delimiter (2)');
	return plaintext.subarray(0, end);
}

/** A push payload as the server sends it, for tests (`overrides` change any field). */
export function samplePushPayload(overrides: Partial<PushPayload> = {}): PushPayload {
	const roomId = randomUUID();
	return {
		type: 'message',
		roomId,
		roomName: 'general',
		isGroup: true,
		senderName: 'Ana',
		mention: true,
		clientMsgId: randomUUID(),
		url: `/rooms/${roomId}`,
		...overrides,
	};
}

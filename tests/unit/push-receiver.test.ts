import webpush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PushReceiver, type TestSubscription } from '../helpers/push-receiver.ts';

/** Sends what `web-push` builds for `subscription`, optionally altered on the way. */
async function send(
	subscription: TestSubscription,
	payload: string,
	options: { keys?: { publicKey: string; privateKey: string }; tamper?: (body: Buffer) => void } = {},
) {
	const keys = options.keys ?? webpush.generateVAPIDKeys();
	const details = webpush.generateRequestDetails(subscription, payload, {
		vapidDetails: { subject: 'mailto:test@localhost', ...keys },
		TTL: 60,
		urgency: 'high',
	});
	const body = Buffer.from(details.body as Buffer);
	options.tamper?.(body);
	const headers = Object.fromEntries(Object.entries(details.headers).map(([k, v]) => [k, String(v)]));
	return fetch(details.endpoint, { method: 'POST', headers, body });
}

describe('the in-test push service (tests/helpers/push-receiver.ts)', () => {
	let receiver: PushReceiver;
	beforeAll(async () => {
		receiver = await PushReceiver.start();
	});
	afterAll(async () => {
		await receiver?.close();
	});

	it('decrypts what web-push encrypts, and checks its VAPID signature, TTL and urgency', async () => {
		const subscription = receiver.subscription();
		const keys = webpush.generateVAPIDKeys();
		const payload = { hello: 'wörld ✓', n: 1 };
		const res = await send(subscription, JSON.stringify(payload), { keys });
		expect(res.status).toBe(201);
		expect(receiver.received(subscription.endpoint)).toEqual([
			{
				payload,
				ttl: 60,
				urgency: 'high',
				topic: undefined,
				vapidKey: keys.publicKey,
				subject: 'mailto:test@localhost',
			},
		]);
	});

	it('refuses a body whose ciphertext was tampered with: it does not authenticate', async () => {
		const subscription = receiver.subscription();
		const res = await send(subscription, '{"secret":true}', {
			tamper: (body) => {
				const last = body.length - 20;
				body[last] = (body[last] as number) ^ 0x01;
			},
		});
		expect(res.status).toBe(400);
		expect(await res.text()).toContain('decryption failed');
		expect(receiver.payloads(subscription.endpoint)).toEqual([]);
	});

	it('refuses a message for another subscription: its keys cannot decrypt it', async () => {
		const mine = receiver.subscription();
		const other = receiver.subscription();
		const res = await send({ ...other, endpoint: mine.endpoint }, '{"x":1}');
		expect(res.status).toBe(400);
		expect(receiver.payloads(mine.endpoint)).toEqual([]);
	});

	it('refuses a VAPID signature that does not match k, and a key other than the applicationServerKey', async () => {
		const keys = webpush.generateVAPIDKeys();
		const subscription = receiver.subscription({ applicationServerKey: keys.publicKey });
		const stranger = webpush.generateVAPIDKeys();
		expect((await send(subscription, '{}', { keys: stranger })).status).toBe(403);

		const details = webpush.generateRequestDetails(subscription, '{}', {
			vapidDetails: { subject: 'mailto:test@localhost', ...keys },
		});
		const forged = String(details.headers.Authorization).replace(/k=.*$/, `k=${stranger.publicKey}`);
		const headers = Object.fromEntries(Object.entries(details.headers).map(([k, v]) => [k, String(v)]));
		const res = await fetch(details.endpoint, {
			method: 'POST',
			headers: { ...headers, Authorization: forged },
			body: new Uint8Array(details.body as Buffer),
		});
		expect(res.status).toBe(401);
		expect(await res.text()).toContain('signature');
		expect(receiver.payloads(subscription.endpoint)).toEqual([]);
	});

	it('answers 410 Gone once told the subscription is gone', async () => {
		const subscription = receiver.subscription();
		receiver.answerGone(subscription.endpoint);
		expect((await send(subscription, '{}')).status).toBe(410);
	});
});

import { randomUUID } from 'node:crypto';
import webpush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PushPayload } from '../../src/lib/protocol/user-channel.ts';
import { describeEachBackend } from '../helpers/backends.ts';
import { PushReceiver, samplePushPayload, type TestSubscription } from '../helpers/push-receiver.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

type User = Awaited<ReturnType<TestServer['api']['register']>>;

function payload(overrides: Partial<PushPayload> = {}): PushPayload {
	return samplePushPayload({ text: 'hello @ben, lunch?', ...overrides });
}

describeEachBackend('Web Push', (backend) => {
	let server: TestServer;
	let receiver: PushReceiver;
	let ana: User;
	let ben: User;

	beforeAll(async () => {
		[server, receiver] = await Promise.all([startTestServer(backend), PushReceiver.start()]);
		ana = await server.api.register('ana');
		ben = await server.api.register('ben');
	});
	afterAll(async () => {
		await server?.close();
		await receiver?.close();
	});

	const subscribe = (user: User, subscription: TestSubscription, previews?: boolean) =>
		server.api.post(
			'/api/push/subscriptions',
			previews === undefined ? subscription : { ...subscription, previews },
			user.accessToken,
		);
	const unsubscribe = (user: User, endpoint: string) =>
		server.api.request('DELETE', '/api/push/subscriptions', { body: { endpoint }, token: user.accessToken });
	const count = async (userId: string) =>
		(
			await server.app.db.query<{ n: number }>(
				'SELECT count(*)::int AS n FROM push_subscriptions WHERE user_id = $1',
				[userId],
			)
		).rows[0]?.n;

	it('gives signed-in users the VAPID public key, the same after a restart', async () => {
		expect((await server.api.get('/api/push/key')).status).toBe(401);
		const res = await server.api.get('/api/push/key', ana.accessToken);
		expect(res.status).toBe(200);
		expect(res.body.publicKey).toMatch(/^B[A-Za-z0-9_-]{86}$/);
		expect(res.body.publicKey).toBe(server.app.push.publicKey());
		await server.restart();
		expect(server.app.push.publicKey()).toBe(res.body.publicKey);
	});

	it('delivers the documented payload, encrypted for each subscription, with text only where previews are on', async () => {
		const plain = receiver.subscription({ applicationServerKey: server.app.push.publicKey() });
		const withPreviews = receiver.subscription({ applicationServerKey: server.app.push.publicKey() });
		const created = await subscribe(ben, plain);
		expect(created.status).toBe(201);
		expect(created.body).toEqual({ endpoint: plain.endpoint, previews: false });
		expect((await subscribe(ben, withPreviews, true)).status).toBe(201);

		const mention = payload();
		expect(await server.app.push.sendToUser(ben.user.id, mention)).toEqual({ sent: 2, removed: 0 });
		const withoutText: PushPayload = { ...mention };
		delete withoutText.text;
		const [toPlain] = receiver.received(plain.endpoint);
		expect(toPlain?.payload).toEqual(withoutText);
		expect(receiver.payloads(withPreviews.endpoint)).toEqual([mention]);
		expect(toPlain).toMatchObject({
			ttl: 24 * 60 * 60,
			urgency: 'high',
			topic: mention.roomId.replaceAll('-', ''),
			vapidKey: server.app.push.publicKey(),
			subject: 'mailto:admin@localhost',
		});

		const direct = payload({ isGroup: false, roomName: null, mention: false });
		await server.app.push.sendToUser(ben.user.id, direct);
		expect(receiver.received(plain.endpoint)[1]).toMatchObject({ urgency: 'normal' });
		expect(receiver.payloads(withPreviews.endpoint)[1]).toEqual(direct);
		const stamped = await server.app.db.query<{ ok: boolean }>(
			'SELECT last_success_at IS NOT NULL AS ok FROM push_subscriptions WHERE user_id = $1',
			[ben.user.id],
		);
		expect(stamped.rows.map((r) => r.ok)).toEqual([true, true]);
		await unsubscribe(ben, plain.endpoint);
		await unsubscribe(ben, withPreviews.endpoint);
	});

	it('cuts a long preview to fit a push message (4096 bytes), marking the cut', async () => {
		const subscription = receiver.subscription();
		await subscribe(ana, subscription, true);
		const long = payload({ text: 'é✓'.repeat(2000) });
		expect(await server.app.push.sendToUser(ana.user.id, long)).toEqual({ sent: 1, removed: 0 });
		const [got] = receiver.payloads(subscription.endpoint) as PushPayload[];
		expect(got?.text?.endsWith('…')).toBe(true);
		expect(long.text?.startsWith(got?.text?.slice(0, -1) ?? 'x')).toBe(true);
		expect(Buffer.byteLength(JSON.stringify(got))).toBeLessThanOrEqual(3000);
		await unsubscribe(ana, subscription.endpoint);
	});

	it('removes a subscription the push service answers 410 Gone for: the next send sends nothing', async () => {
		const subscription = receiver.subscription();
		await subscribe(ana, subscription);
		receiver.answerGone(subscription.endpoint);
		expect(await server.app.push.sendToUser(ana.user.id, payload())).toEqual({ sent: 0, removed: 1 });
		expect(await count(ana.user.id)).toBe(0);
		expect(await server.app.push.sendToUser(ana.user.id, payload())).toEqual({ sent: 0, removed: 0 });
	});

	it('keeps a subscription whose push service cannot be reached, and does not throw', async () => {
		const gone = await PushReceiver.start();
		const subscription = gone.subscription();
		await gone.close();
		await subscribe(ana, subscription);
		expect(await server.app.push.sendToUser(ana.user.id, payload())).toEqual({ sent: 0, removed: 0 });
		expect(await count(ana.user.id)).toBe(1);
		await unsubscribe(ana, subscription.endpoint);
	});

	it('refuses bad subscription bodies with 400 naming the field', async () => {
		const good = receiver.subscription();
		const otherPoint = Buffer.alloc(65, 7);
		otherPoint[0] = 4;
		const cases: [unknown, string][] = [
			[{ endpoint: good.endpoint }, 'keys'],
			[{ ...good, endpoint: 'not a url' }, 'endpoint'],
			[{ ...good, endpoint: 'http://push.example.com/x' }, 'endpoint: expected an https: URL'],
			[{ ...good, endpoint: 'ftp://127.0.0.1/x' }, 'endpoint'],
			[{ ...good, endpoint: 'https://user:pw@push.example.com/x' }, 'endpoint'],
			[{ ...good, keys: { ...good.keys, p256dh: 'AAAA' } }, 'keys.p256dh'],
			[{ ...good, keys: { ...good.keys, p256dh: otherPoint.toString('base64url') } }, 'keys.p256dh'],
			[{ ...good, keys: { ...good.keys, auth: 'short' } }, 'keys.auth'],
			[{ ...good, previews: 'yes' }, 'previews'],
			[{ ...good, extra: 1 }, 'unknown field(s): extra'],
		];
		for (const [body, field] of cases) {
			const res = await server.api.post('/api/push/subscriptions', body, ana.accessToken);
			expect(res.status, JSON.stringify(body)).toBe(400);
			expect(res.body.error.code).toBe('validation_failed');
			expect(res.body.error.message).toContain(field);
		}
		expect((await server.api.post('/api/push/subscriptions', good)).status).toBe(401);
		expect(await count(ana.user.id)).toBe(0);
	});

	it("does not let a user delete another user's subscription", async () => {
		const subscription = receiver.subscription();
		await subscribe(ana, subscription);
		expect((await unsubscribe(ben, subscription.endpoint)).status).toBe(204);
		expect(await server.app.push.sendToUser(ana.user.id, payload())).toEqual({ sent: 1, removed: 0 });
		expect((await unsubscribe(ana, subscription.endpoint)).status).toBe(204);
		expect(await server.app.push.sendToUser(ana.user.id, payload())).toEqual({ sent: 0, removed: 0 });
		expect(receiver.payloads(subscription.endpoint)).toHaveLength(1);
		const bad = await server.api.request('DELETE', '/api/push/subscriptions', {
			body: {},
			token: ana.accessToken,
		});
		expect(bad.status).toBe(400);
		expect(bad.body.error.message).toContain('endpoint');
	});

	it('moves an endpoint subscribed again by another user (the browser profile changed hands)', async () => {
		const subscription = receiver.subscription();
		await subscribe(ana, subscription);
		await subscribe(ben, subscription, true);
		expect(await count(ana.user.id)).toBe(0);
		expect(await server.app.push.sendToUser(ana.user.id, payload())).toEqual({ sent: 0, removed: 0 });
		const toBen = payload();
		expect(await server.app.push.sendToUser(ben.user.id, toBen)).toEqual({ sent: 1, removed: 0 });
		expect(receiver.payloads(subscription.endpoint)).toEqual([toBen]);
		await unsubscribe(ben, subscription.endpoint);
	});

	it('never writes the payload text, the endpoint path or its keys to the log', async () => {
		const subscription = receiver.subscription();
		await subscribe(ana, subscription, true);
		receiver.answerGone(subscription.endpoint);
		const secret = `secret-${randomUUID()}`;
		await server.app.push.sendToUser(ana.user.id, payload({ text: secret }));
		const { readFileSync } = await import('node:fs');
		const log = readFileSync(server.logFile, 'utf8');
		expect(log).toContain('push subscription gone');
		for (const needle of [secret, new URL(subscription.endpoint).pathname, subscription.keys.auth])
			expect(log).not.toContain(needle);
	});
});

describe('Web Push keys from the environment', () => {
	it('uses VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY when both are set', async () => {
		const keys = webpush.generateVAPIDKeys();
		const server = await startTestServer('pglite', {
			VAPID_PUBLIC_KEY: keys.publicKey,
			VAPID_PRIVATE_KEY: keys.privateKey,
			VAPID_SUBJECT: 'https://chat.example.com/contact',
		});
		const receiver = await PushReceiver.start();
		try {
			const user = await server.api.register('kay');
			const subscription = receiver.subscription({ applicationServerKey: keys.publicKey });
			expect((await server.api.get('/api/push/key', user.accessToken)).body).toEqual({
				publicKey: keys.publicKey,
			});
			await server.api.post('/api/push/subscriptions', subscription, user.accessToken);
			await server.app.push.sendToUser(user.user.id, payload());
			expect(receiver.received(subscription.endpoint)[0]?.subject).toBe('https://chat.example.com/contact');
		} finally {
			await server.close();
			await receiver.close();
		}
	});
});

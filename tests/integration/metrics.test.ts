import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { connect, waitFor, type TestClient } from '../helpers/collab.ts';
import { parsePrometheus, type Exposition } from '../helpers/prometheus.ts';
import { repoRoot } from '../helpers/process.ts';
import { RawClient } from '../helpers/raw-ws.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const METRICS_TOKEN = 'metrics-token-for-the-test-0123456789';
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

/**
 * `GET /metrics` (issue 8): after a scripted session the exposition parses as the Prometheus text format and the
 * counters moved by exactly what the session did.
 */
describe('metrics', () => {
	let server: TestServer;
	let before: Exposition;
	let after: Exposition;
	let ana: TestClient | undefined;

	const scrape = async (token: string | null = METRICS_TOKEN) =>
		fetch(`${server.url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
	const read = async () => {
		const res = await scrape();
		expect(res.status).toBe(200);
		expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
		return parsePrometheus(await res.text());
	};
	const moved = (name: string, labels: Record<string, string> = {}) =>
		(after.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0);

	beforeAll(async () => {
		server = await startTestServer('pglite', { METRICS_TOKEN });
		const api = server.api;
		before = await read();

		const a = await api.register('ana');
		const b = await api.register('ben');
		expect(
			(await api.post('/api/auth/login', { name: a.user.name, password: 'not the password' })).status,
		).toBe(401);
		const room = await api.createGroup(a.accessToken, [b.user.id]);

		ana = connect(server.wsUrl, room.id, a.accessToken, a.user.id);
		await waitFor(() => ana?.provider.isSynced === true);
		for (let i = 0; i < 10; i++) ana.send(`hello ${i}`);
		await ana.synced();

		// One refused write: Ben claims to be Ana.
		const forged = new Y.Doc();
		forged.getMap('messages').set('forged-0001', {
			kind: 'message',
			clientMsgId: 'forged-0001',
			senderId: a.user.id,
			content: 'I am Ana',
			createdAt: new Date().toISOString(),
		});
		const mallory = await RawClient.open(server.wsUrl, `room:${room.id}`, b.accessToken);
		await mallory.authenticated;
		mallory.sendUpdate(Y.encodeStateAsUpdate(forged));
		expect((await mallory.outcome(5_000)).kind).not.toBe('open');
		mallory.close();

		// A collaboration connection with a token that is not one.
		const stranger = connect(server.wsUrl, room.id, 'not-a-token');
		await stranger.authFailure;
		stranger.destroy();

		await waitFor(async () => (await read()).value('chat_connections') === 1);
		after = await read();
	}, 60_000);

	afterAll(async () => {
		ana?.destroy();
		await server?.close();
	});

	it('is protected by the bearer token from METRICS_TOKEN', async () => {
		expect((await scrape(null)).status).toBe(401);
		expect((await scrape('wrong-token-of-the-same-size-0123456')).status).toBe(401);
		expect((await scrape()).status).toBe(200);
	});

	it('counts accepted events, refused updates and their sizes exactly', () => {
		expect(moved('chat_events_accepted_total', { kind: 'message' })).toBe(10);
		expect(moved('chat_updates_rejected_total', { reason: 'invalid-update' })).toBe(1);
		// One observation per mirrored event; the provider may put several messages in one update.
		expect(moved('chat_mirror_lag_seconds_count')).toBe(10);
		const updates = moved('chat_update_bytes_count');
		expect(updates).toBeGreaterThanOrEqual(1);
		expect(updates).toBeLessThanOrEqual(10);
		expect(moved('chat_update_bytes_sum')).toBeGreaterThan(10 * 'hello 0'.length);
		expect(moved('chat_durable_append_seconds_count')).toBeGreaterThanOrEqual(1);
		expect(moved('chat_durable_append_seconds_count')).toBeLessThanOrEqual(updates);
	});

	it('counts HTTP requests by route pattern and status, and failed sign-ins and connections by reason', () => {
		expect(
			moved('chat_http_requests_total', { method: 'POST', route: '/api/auth/register', status: '201' }),
		).toBe(2);
		expect(
			moved('chat_http_requests_total', { method: 'POST', route: '/api/auth/login', status: '401' }),
		).toBe(1);
		expect(moved('chat_http_requests_total', { method: 'POST', route: '/api/rooms', status: '201' })).toBe(1);
		expect(moved('chat_auth_failures_total', { channel: 'http', reason: 'wrong_credentials' })).toBe(1);
		expect(moved('chat_auth_failures_total', { channel: 'collab', reason: 'token_invalid' })).toBe(1);
	});

	it('reports connections, loaded rooms and process metrics, and never labels by user or room', () => {
		expect(after.value('chat_connections')).toBe(1);
		expect(after.value('chat_documents_loaded')).toBe(1);
		expect(after.value('chat_redis_up')).toBeUndefined(); // this node has no Redis
		expect(after.types.get('process_cpu_user_seconds_total')).toBe('counter');
		// A live V8 heap: megabytes used, within what the heap holds.
		expect(after.value('nodejs_heap_size_used_bytes')).toBeGreaterThan(4 * 1024 * 1024);
		expect(after.value('nodejs_heap_size_used_bytes')).toBeLessThanOrEqual(
			after.value('nodejs_heap_size_total_bytes') as number,
		);
		for (const s of after.samples)
			for (const value of Object.values(s.labels)) expect(value, `${s.name} ${value}`).not.toMatch(UUID);
		for (const [name, type] of after.types)
			if (name.startsWith('chat_')) expect(after.help.get(name), `${name} (${type})`).toMatch(/\w+ \w+/);
	});

	it('is what the Grafana dashboard in docs/ asks for', () => {
		const dashboard = JSON.parse(
			fs.readFileSync(path.join(repoRoot, 'docs/grafana-dashboard.json'), 'utf8'),
		) as {
			panels: { title: string; targets: { expr: string }[] }[];
		};
		const asked = new Set(
			dashboard.panels.flatMap((p) =>
				p.targets.flatMap((t) =>
					[...t.expr.matchAll(/\b((?:chat|process|nodejs)_[a-z0-9_]+)/g)].map((m) =>
						(m[1] as string).replace(/_(bucket|sum|count)$/, ''),
					),
				),
			),
		);
		expect(asked.size).toBeGreaterThan(10);
		// chat_redis_up exists only on nodes with Redis (readiness tests cover that node kind).
		for (const name of asked) if (name !== 'chat_redis_up') expect(after.types.has(name), name).toBe(true);
	});
});

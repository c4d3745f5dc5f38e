import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../helpers/backends.ts';
import { connect, waitFor, type TestClient } from '../helpers/collab.ts';
import { spawnServer, type ServerProcess } from '../helpers/process.ts';
import { Api, tmpDir } from '../helpers/server.ts';

const canRun = Boolean(inject('postgresAdminUrl') && inject('redisUrl'));

describe.skipIf(!canRun)('two nodes through Redis', () => {
	const prefix = `chat-test-${randomBytes(4).toString('hex')}`;
	const nodes: ServerProcess[] = [];
	const dirs: string[] = [];
	const clients: TestClient[] = [];
	let drop: () => Promise<void>;
	let urls: string[];

	beforeAll(async () => {
		const db = await createTestDatabase();
		drop = db.drop;
		const env = {
			DATABASE_URL: db.url,
			REDIS_URL: inject('redisUrl') as string,
			REDIS_PREFIX: prefix,
			JWT_SECRET: 'cluster-secret-for-this-test-0123456789',
			PORT: '0',
		};
		for (let i = 0; i < 2; i++) {
			const dir = tmpDir(`node${i}`);
			dirs.push(dir);
			nodes.push(spawnServer({ ...env, DATA_DIR: dir }));
		}
		urls = await Promise.all(nodes.map((n) => n.ready));
	});

	afterAll(async () => {
		for (const c of clients) c.destroy();
		for (const n of nodes) n.proc.kill('SIGTERM');
		await Promise.all(nodes.map((n) => n.exited));
		await drop?.();
		for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
		const redis = new Redis(inject('redisUrl') as string);
		const keys = await redis.keys(`${prefix}*`);
		if (keys.length > 0) await redis.del(...keys);
		redis.disconnect();
	});

	const ws = (i: number) => `${(urls[i] as string).replace(/^http/, 'ws')}/collab`;
	const open = (i: number, roomId: string, user: { accessToken: string; user: { id: string } }) => {
		const c = connect(ws(i), roomId, user.accessToken, user.user.id);
		clients.push(c);
		return c;
	};

	it('lets clients on node A and node B exchange messages, typing and presence, and gives a late joiner on B the history', async () => {
		const api = new Api(urls[0] as string);
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const cara = await api.register('cara');
		const room = await api.createGroup(ana.accessToken, [ben.user.id, cara.user.id]);
		const a = open(0, room.id, ana);
		const b = open(1, room.id, ben);
		await Promise.all([a.synced(), b.synced()]);

		for (let i = 0; i < 10; i++) {
			a.send(`from A ${i}`);
			b.send(`from B ${i}`);
		}
		await Promise.all([a.synced(), b.synced()]);
		await waitFor(
			() => a.messages().length === 20 && b.messages().length === 20,
			10_000,
			'both sides to have 20',
		);

		b.provider.awareness?.setLocalState({ user: { color: '#123456' }, typing: true });
		await waitFor(
			() =>
				[...(a.provider.awareness?.getStates().values() ?? [])].some(
					(s) => s.typing === true && s.user?.id === ben.user.id,
				),
			10_000,
			'Ana on A to see Ben on B typing',
		);

		const late = open(1, room.id, cara);
		await late.synced();
		await waitFor(() => late.messages().length === 20, 10_000, 'the late joiner on B to get the history');

		const rows = await api.get(`/api/rooms/${room.id}/messages?limit=100`, ana.accessToken);
		expect(rows.body.items).toHaveLength(20);
	});

	it('reports Redis in readiness on both nodes', async () => {
		for (const url of urls) {
			const ready = await new Api(url).get('/readyz');
			expect(ready.body.checks.redis).toEqual({ ok: true });
		}
	});
});

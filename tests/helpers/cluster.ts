import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { expect, inject } from 'vitest';
import { createTestDatabase } from './backends.ts';
import { connect, waitFor, type TestClient } from './collab.ts';
import { freePort, spawnServer, type ServerProcess } from './process.ts';
import { Api, tmpDir } from './server.ts';

/** Cluster tests need both; in CI the global setup fails the run when either is missing. */
export const canRunCluster = Boolean(inject('postgresAdminUrl') && inject('redisUrl'));

export interface Cluster {
	/** The current process of each node (a restart replaces it). */
	nodes: ServerProcess[];
	urls: string[];
	/** The nodes' REDIS_PREFIX: room traffic between nodes goes on `<prefix>:collab:<document name>`. */
	prefix: string;
	api: Api;
	ws(node: number): string;
	/** A test client on `node`, destroyed with the cluster. */
	open(
		node: number,
		roomId: string,
		user: { accessToken: string; user: { id: string } },
		options?: Parameters<typeof connect>[4],
	): TestClient;
	/** SIGKILLs a node and waits until it is gone. */
	kill(node: number): Promise<void>;
	/** Starts a node again on its port and data directory. */
	restart(node: number): Promise<void>;
	close(): Promise<void>;
}

/**
 * N real server processes on one fresh Postgres database and one Redis key prefix, each node on a fixed
 * port so it comes back on the same address after a crash. `env` adds or overrides variables per node.
 */
export async function startCluster(
	count: number,
	env: (node: number) => Record<string, string> = () => ({}),
): Promise<Cluster> {
	const prefix = `chat-test-${randomBytes(4).toString('hex')}`;
	const db = await createTestDatabase();
	const ports: number[] = [];
	for (let i = 0; i < count; i++) ports.push(await freePort());
	const dirs = ports.map((_, i) => tmpDir(`cluster-node${i}`));
	const clients: TestClient[] = [];
	const all: ServerProcess[] = [];
	const spawnNode = (i: number) => {
		const node = spawnServer({
			DATABASE_URL: db.url,
			REDIS_URL: inject('redisUrl') as string,
			REDIS_PREFIX: prefix,
			JWT_SECRET: 'cluster-secret-for-this-test-0123456789',
			PORT: String(ports[i]),
			DATA_DIR: dirs[i] as string,
			AUTH_RATE_LIMIT_PER_MINUTE: '10000',
			...env(i),
		});
		all.push(node);
		return node;
	};
	const nodes = ports.map((_, i) => spawnNode(i));
	const urls = await Promise.all(nodes.map((n) => n.ready));
	const ws = (i: number) => `${(urls[i] as string).replace(/^http/, 'ws')}/collab`;
	return {
		nodes,
		urls,
		prefix,
		api: new Api(urls[0] as string),
		ws,
		open(node, roomId, user, options) {
			const client = connect(ws(node), roomId, user.accessToken, user.user.id, options);
			clients.push(client);
			return client;
		},
		async kill(i) {
			nodes[i]?.proc.kill('SIGKILL');
			await nodes[i]?.exited;
		},
		async restart(i) {
			nodes[i] = spawnNode(i);
			await nodes[i].ready;
		},
		async close() {
			for (const c of clients) c.destroy();
			for (const n of all) if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGTERM');
			await Promise.all(all.map((n) => n.exited));
			await db.drop();
			for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
			const redis = new Redis(inject('redisUrl') as string);
			const keys = await redis.keys(`${prefix}*`);
			if (keys.length > 0) await redis.del(...keys);
			redis.disconnect();
		},
	};
}

/**
 * Checks that every node's copy of a room and its `messages` rows in Postgres hold exactly `expected`
 * (clientMsgIds), each row once. Returns the number of rows.
 */
export async function expectRoomEverywhere(
	cluster: Cluster,
	roomId: string,
	member: { accessToken: string; user: { id: string } },
	expected: Set<string>,
): Promise<number> {
	for (const node of cluster.nodes.keys()) {
		const reader = cluster.open(node, roomId, member);
		await reader.synced();
		await waitFor(() => reader.messages().length === expected.size, 30_000, `node ${node} to hold the room`);
		expect(new Set(reader.messages().map((m) => m.clientMsgId))).toEqual(expected);
	}
	const exported = await cluster.api.get(`/api/rooms/${roomId}/export?format=jsonl`, member.accessToken);
	const ids = (exported.body as string)
		.trim()
		.split('\n')
		.filter(Boolean)
		.map((l) => (JSON.parse(l) as { clientMsgId: string }).clientMsgId);
	expect(ids.length).toBe(new Set(ids).size);
	expect(new Set(ids)).toEqual(expected);
	return ids.length;
}

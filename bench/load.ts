/**
 * `npm run bench`: the same load against three servers in one run, side by side (issue 7).
 *
 * Targets: `ours` (the real server: auth, validation, durable append to Postgres, mirror, relay), `bare` (a bare
 * @hocuspocus/server, no extensions) and `yws` (the reference @y/websocket-server 0.1.1). Each runs as its own
 * process; the clients run here: CLIENTS real providers (@hocuspocus/provider, or y-websocket for `yws`), each
 * with its own Y.Doc and socket, spread over ROOMS rooms. Every client writes one message every INTERVAL_MS
 * (random phase), the way the app writes one (one new key in `messages`). Measured after WARMUP_S, for
 * DURATION_S: end-to-end latency from the writer's local write to each other member's observation (p50, p95, p99),
 * deliveries per second, the server's CPU per delivery and its RSS, and RSS per idle connection.
 *
 * Defaults are the goal-1 load (1,000 clients in 100 rooms, one message per client every 10 s); `--smoke` runs a
 * tiny load in seconds, to check the harness (CI does, and asserts nothing about timing). Results go to
 * bench/results/load.json and a markdown table on stdout.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { TokenService } from '../server/auth/tokens.ts';
import { parseConfig } from '../server/config.ts';
import { openDb } from '../server/db/index.ts';
import { migrate } from '../server/db/migrate.ts';
import { createLogger } from '../server/log.ts';
import { freePort, repoRoot, spawnServer, type ServerProcess } from '../tests/helpers/process.ts';
import { admin, adminUrl } from './common.ts';

const smoke = process.argv.includes('--smoke');
const env = (name: string, fallback: number, smokeValue: number) =>
	Number(process.env[name] ?? (smoke ? smokeValue : fallback));
const CLIENTS = env('CLIENTS', 1_000, 12);
const ROOMS = env('ROOMS', 100, 3);
const INTERVAL_MS = env('INTERVAL_MS', 10_000, 500);
const WARMUP_S = env('WARMUP_S', 10, 1);
const DURATION_S = env('DURATION_S', 60, 4);
const TARGETS = (process.env.TARGETS ?? 'bare,ours,yws').split(',') as Target[];
const JWT_SECRET = 'bench-secret-0123456789-abcdefghijklmnop';
const TICK_MS = 1000 / 100; // USER_HZ

type Target = 'ours' | 'bare' | 'yws';

// Every y-websocket provider listens for the process's exit: one listener per simulated client.
process.setMaxListeners(CLIENTS + 20);

interface Client {
	doc: Y.Doc;
	roomIndex: number;
	userId: string;
	destroy(): void;
	synced(): boolean;
}

function procStats(pid: number): { cpuMs: number; rssMb: number } {
	const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
	const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
	const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
	return { cpuMs: (Number(stat[11]) + Number(stat[12])) * TICK_MS, rssMb: rssKb / 1024 };
}

const percentile = (sorted: number[], p: number) =>
	sorted.length === 0
		? NaN
		: (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number);

/** Starts a target; for `ours`, a fresh database with the users and rooms already in it, and their tokens. */
async function startTarget(target: Target): Promise<{
	server: ServerProcess;
	url: string;
	users: { id: string; token: string | null }[];
	rooms: string[];
	cleanup(): Promise<void>;
}> {
	const port = await freePort();
	const users = Array.from({ length: CLIENTS }, () => ({ id: randomUUID(), token: null as string | null }));
	const rooms = Array.from({ length: ROOMS }, () => randomUUID());
	if (target === 'bare') {
		const server = spawnServer({ PORT: String(port) }, [
			process.execPath,
			'bench/targets/bare-hocuspocus.ts',
		]);
		return {
			server,
			url: await ready(server, /bench target listening/, port),
			users,
			rooms,
			cleanup: async () => {},
		};
	}
	if (target === 'yws') {
		const server = spawnServer({ PORT: String(port), HOST: '127.0.0.1' }, [
			process.execPath,
			path.join(repoRoot, 'node_modules/@y/websocket-server/src/server.js'),
		]);
		return { server, url: await ready(server, /running at/, port), users, rooms, cleanup: async () => {} };
	}
	const dbName = `bench_load_${randomUUID().slice(0, 8)}`;
	await admin(`CREATE DATABASE ${dbName}`);
	const url = new URL(adminUrl);
	url.pathname = `/${dbName}`;
	const config = parseConfig({ DATABASE_URL: url.toString(), JWT_SECRET });
	const db = await openDb(config, createLogger('warn'));
	await migrate(db);
	// Users, rooms and memberships straight into the database: registering 1,000 users through scrypt is not
	// what is measured. Tokens are signed with the server's secret, as its login would.
	await db.query(
		`INSERT INTO users (id, name, password_hash) SELECT id, 'bench_' || substr(id::text, 1, 8) || n, 'x'
		 FROM unnest($1::uuid[]) WITH ORDINALITY AS t (id, n)`,
		[users.map((u) => u.id)],
	);
	await db.query(
		`INSERT INTO rooms (id, name, is_group, created_by) SELECT id, 'bench', true, $2 FROM unnest($1::uuid[]) AS id`,
		[rooms, users[0]?.id],
	);
	await db.query(
		`INSERT INTO memberships (room_id, user_id, role) SELECT r, u, 'member'
		 FROM unnest($1::uuid[], $2::uuid[]) AS t (r, u)`,
		[users.map((_, i) => rooms[i % ROOMS]), users.map((u) => u.id)],
	);
	await db.close();
	const tokens = new TokenService(config);
	for (const [i, u] of users.entries())
		u.token = await tokens.signAccess({ userId: u.id, name: `bench${i}` });
	const server = spawnServer({
		PORT: String(port),
		DATABASE_URL: url.toString(),
		JWT_SECRET,
		WRITE_UPDATES_PER_10S: '1000000',
		WRITE_MESSAGES_PER_10S: '1000000',
		WS_CONNECTIONS_PER_IP_PER_MINUTE: '1000000',
		AUTH_RATE_LIMIT_PER_MINUTE: '1000000',
		DATA_DIR: path.join(repoRoot, 'node_modules', '.cache', `bench-${dbName}`),
	});
	return {
		server,
		url: await ready(server, /server listening/, port),
		users,
		rooms,
		cleanup: () => admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`),
	};
}

async function ready(server: ServerProcess, line: RegExp, port: number): Promise<string> {
	const deadline = Date.now() + 30_000;
	while (!line.test(server.output())) {
		if (Date.now() > deadline || server.proc.exitCode !== null)
			throw new Error(`target did not start:\n${server.output()}`);
		await new Promise((r) => setTimeout(r, 50));
	}
	return `ws://127.0.0.1:${port}`;
}

function connectClient(
	target: Target,
	url: string,
	room: string,
	user: { id: string; token: string | null },
	roomIndex: number,
): Client {
	const doc = new Y.Doc();
	if (target === 'yws') {
		const provider = new WebsocketProvider(url, `room:${room}`, doc, { disableBc: true });
		return {
			doc,
			roomIndex,
			userId: user.id,
			synced: () => provider.synced,
			destroy: () => provider.destroy(),
		};
	}
	const socket = new HocuspocusProviderWebsocket({ url: target === 'ours' ? `${url}/collab` : url });
	const provider = new HocuspocusProvider({
		websocketProvider: socket,
		name: `room:${room}`,
		document: doc,
		token: user.token ?? 'bench',
	});
	provider.attach();
	return {
		doc,
		roomIndex,
		userId: user.id,
		synced: () => provider.isSynced,
		destroy: () => {
			provider.destroy();
			socket.destroy();
		},
	};
}

async function run(target: Target) {
	const started = await startTarget(target);
	const pid = started.server.serverPid() || (started.server.proc.pid as number);
	const clients: Client[] = [];
	try {
		await new Promise((r) => setTimeout(r, 500));
		const base = procStats(pid);
		for (const [i, user] of started.users.entries()) {
			clients.push(connectClient(target, started.url, started.rooms[i % ROOMS] as string, user, i % ROOMS));
			if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20));
		}
		const deadline = Date.now() + 120_000;
		while (!clients.every((c) => c.synced())) {
			if (Date.now() > deadline)
				throw new Error(`${target}: ${clients.filter((c) => !c.synced()).length} clients never synced`);
			await new Promise((r) => setTimeout(r, 100));
		}
		await new Promise((r) => setTimeout(r, 1_000));
		const idle = procStats(pid);

		const sentAt = new Map<string, number>();
		const latencies: number[] = [];
		let measuring = false;
		let deliveries = 0;
		for (const c of clients) {
			c.doc.getMap('messages').observe((event, tx) => {
				if (tx.local) return;
				const now = performance.now();
				for (const key of event.keysChanged) {
					const at = sentAt.get(key);
					if (at === undefined || !measuring) continue;
					latencies.push(now - at);
					deliveries++;
				}
			});
		}
		const timers = clients.map((c, index) =>
			setTimeout(function tick() {
				const clientMsgId = randomUUID();
				const event = {
					kind: 'message',
					clientMsgId,
					senderId: c.userId,
					content: 'bench message',
					createdAt: new Date().toISOString(),
				};
				sentAt.set(clientMsgId, performance.now());
				c.doc.transact(() => c.doc.getMap('messages').set(clientMsgId, event));
				timers[index] = setTimeout(tick, INTERVAL_MS);
			}, Math.random() * INTERVAL_MS),
		);
		await new Promise((r) => setTimeout(r, WARMUP_S * 1_000));
		measuring = true;
		const before = procStats(pid);
		const t0 = performance.now();
		await new Promise((r) => setTimeout(r, DURATION_S * 1_000));
		measuring = false;
		const seconds = (performance.now() - t0) / 1_000;
		const after = procStats(pid);
		for (const t of timers) clearTimeout(t);
		latencies.sort((a, b) => a - b);
		return {
			target,
			clients: CLIENTS,
			rooms: ROOMS,
			deliveriesPerSecond: deliveries / seconds,
			p50Ms: percentile(latencies, 50),
			p95Ms: percentile(latencies, 95),
			p99Ms: percentile(latencies, 99),
			serverCpuPerDeliveryUs: deliveries > 0 ? ((after.cpuMs - before.cpuMs) * 1_000) / deliveries : NaN,
			serverRssMb: after.rssMb,
			rssPerIdleConnectionKb: ((idle.rssMb - base.rssMb) * 1024) / CLIENTS,
		};
	} finally {
		for (const c of clients) c.destroy();
		started.server.proc.kill('SIGTERM');
		await started.server.exited;
		await started.cleanup();
	}
}

const results = [];
for (const target of TARGETS) {
	const r = await run(target);
	results.push(r);
	console.log(`${target}: ${JSON.stringify(r)}`);
}
const bare = results.find((r) => r.target === 'bare');
const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
const lines = [
	`${CLIENTS} clients in ${ROOMS} rooms, one message per client every ${INTERVAL_MS / 1000} s, ${DURATION_S} s measured after ${WARMUP_S} s:`,
	'',
	'| Target | deliveries/s | p50 ms | p95 ms | p99 ms | p99 ×bare | server CPU µs/delivery | RSS MB | KB/idle connection |',
	'| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
	...results.map(
		(r) =>
			`| ${r.target} | ${fmt(r.deliveriesPerSecond, 0)} | ${fmt(r.p50Ms)} | ${fmt(r.p95Ms)} | ${fmt(r.p99Ms)} | ${bare ? fmt(r.p99Ms / bare.p99Ms, 2) : '–'} | ${fmt(r.serverCpuPerDeliveryUs, 0)} | ${fmt(r.serverRssMb, 0)} | ${fmt(r.rssPerIdleConnectionKb, 0)} |`,
	),
];
console.log(`\n${lines.join('\n')}`);
const out = path.join(repoRoot, 'bench', 'results', smoke ? 'load-smoke.json' : 'load.json');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(
	out,
	`${JSON.stringify({ smoke, clients: CLIENTS, rooms: ROOMS, intervalMs: INTERVAL_MS, results }, null, 2)}\n`,
);
process.exit(0);

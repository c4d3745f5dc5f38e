/**
 * The load harness shared by `bench/load.ts`, `bench/max-rate.ts`, `bench/room-memory.ts` and `bench/soak.ts`:
 * starts a target server as its own process, connects simulated clients (real providers, each with its own
 * Y.Doc and socket) and drives and measures a message load.
 *
 * Targets:
 * - `bare`: @hocuspocus/server with no extensions (bench/targets/bare-hocuspocus.ts);
 * - `yws`: the reference @y/websocket-server 0.1.1 (y-websocket as its client);
 * - `seed`: the design this product grew out of: Socket.IO 4, JWT at the handshake, one INSERT before the
 *   broadcast and the ack (bench/targets/seed-socketio.ts), on a throwaway database;
 * - `ours`: the real server (auth, validation, durable append to Postgres, mirror, relay) on a throwaway
 *   database with the users, rooms and tokens seeded straight into it;
 * - `ours-relay-first`: the same, relaying before the commit (an experiment; see docs/benchmarks.md);
 * - `bare-2node`: two bare Hocuspocus nodes with only @hocuspocus/extension-redis, the baseline of:
 * - `ours-2node`: two of our nodes sharing the database and Redis; the members of each room are split between them.
 *
 * Every target runs with `--expose-gc` and bench/targets/gc-on-signal.ts preloaded, so memory can be read after a
 * full collection.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { TokenService } from '../server/auth/tokens.ts';
import { parseConfig } from '../server/config.ts';
import { openDb } from '../server/db/index.ts';
import { migrate } from '../server/db/migrate.ts';
import { createLogger } from '../server/log.ts';
import { nodeFlags } from '../server/node-flags.ts';
import { freePort, repoRoot, spawnServer, type ServerProcess } from '../tests/helpers/process.ts';
import { admin, adminUrl } from './common.ts';
import { connectDocClient, type Client, type ClientSpec, type DocClient } from './client.ts';
import type { FromGenerator, ToGenerator } from './generator.ts';
import { perfDir, perfNodeFlags, recordPerf, removeJitDump, type PerfRecording } from './perf-record.ts';

export { type Client, type ClientSpec, type DocClient };

export type Target =
	'bare' | 'yws' | 'seed' | 'ours' | 'ours-b' | 'ours-relay-first' | 'bare-2node' | 'ours-2node';
export const targets: Target[] = [
	'bare',
	'yws',
	'seed',
	'ours',
	'ours-b',
	'ours-relay-first',
	'bare-2node',
	'ours-2node',
];

const JWT_SECRET = 'bench-secret-0123456789-abcdefghijklmnop';
const TICK_MS = 1000 / 100; // USER_HZ
const redisUrl = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const targetArgs = ['--expose-gc', ...perfNodeFlags, '--import', './bench/targets/gc-on-signal.ts'];

/**
 * PIN (on by default where `taskset` and two or more cores exist; PIN=off turns it off): each target's processes
 * run on core 0 and the load generator's on the others, so the server under test never competes with the clients
 * measuring it for a core (the rows of issue 21 were measured so). The Postgres backends that serve a target's
 * database are moved to the generator's cores too before each measured window (`pinDatabase`): where the kernel put
 * them, they took turns on the server's core, and the server's profile showed their time as its own socket writes.
 * Redis runs where the kernel puts it.
 */
export const pinning = (() => {
	const setting = process.env.PIN ?? 'auto';
	if (!['auto', 'on', 'off'].includes(setting))
		throw new Error(`PIN must be on, off or auto, got "${setting}"`);
	const possible = os.availableParallelism() >= 2 && fs.existsSync('/usr/bin/taskset');
	if (setting === 'on' && !possible) throw new Error('PIN=on needs taskset and at least two cores');
	return setting !== 'off' && possible;
})();
const cores = { server: '0', generator: `1-${os.availableParallelism() - 1}` };

/** The command prefix that runs a process of `role` on its cores (nothing when not pinning). */
export function pinned(role: keyof typeof cores): string[] {
	return pinning ? ['/usr/bin/taskset', '-c', cores[role]] : [];
}

/** Moves a running process, every thread of it, to the cores of `role` (nothing when not pinning). */
export function pin(pid: number, role: keyof typeof cores): void {
	if (pinning)
		execFileSync('/usr/bin/taskset', ['-a', '-p', '-c', cores[role], String(pid)], { stdio: 'ignore' });
}

/**
 * CPU_PROF=<dir>: every target process writes a V8 CPU profile of the measured windows there
 * (`<target>-<pid>.cpuprofile`; see `RunningTarget.profile`): `npm run bench:profile` summarizes them, Chrome
 * DevTools opens them.
 */
const cpuProfileDir = process.env.CPU_PROF ? path.resolve(process.env.CPU_PROF) : undefined;
/**
 * ALLOC_PROF=<dir>: the same, but a sampling profile of what each target allocated in the windows (objects the
 * collector freed since included), `<target>-<pid>.heapprofile`, which `npm run bench:profile` reads as well.
 * ALLOC_PROF_PROMOTED=1 leaves out what died in the young generation: what was promoted (or still lived at the end).
 */
const allocProfileDir = process.env.ALLOC_PROF ? path.resolve(process.env.ALLOC_PROF) : undefined;
if ([cpuProfileDir, allocProfileDir, perfDir].filter(Boolean).length > 1)
	throw new Error('CPU_PROF, ALLOC_PROF and PERF_PROF: set one of them (a profiler shows in the others)');
const profileDir = cpuProfileDir ?? allocProfileDir;
/**
 * BENCH_STAGES=<dir>: our server times every update through its stages (bench/stage-clock.ts) and the seed's design
 * its INSERT; each writes `<target>-<pid>.stages.json` there when it stops (`npm run bench:stages` prints them).
 */
const stagesDir = process.env.BENCH_STAGES ? path.resolve(process.env.BENCH_STAGES) : undefined;
const profileEnv = (target: Target): Record<string, string> => ({
	...(profileDir || stagesDir ? { BENCH_TARGET: target } : {}),
	...(cpuProfileDir ? { BENCH_CPU_PROF: cpuProfileDir } : {}),
	...(allocProfileDir ? { BENCH_ALLOC_PROF: allocProfileDir } : {}),
	...(allocProfileDir && process.env.ALLOC_PROF_PROMOTED ? { BENCH_ALLOC_PROF_PROMOTED: '1' } : {}),
	...(stagesDir && (target === 'seed' || target.startsWith('ours')) ? { BENCH_STAGES: stagesDir } : {}),
});

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const percentile = (sorted: number[], p: number) =>
	sorted.length === 0
		? NaN
		: (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number);

/** Parses the targets named in `value` (comma-separated), failing loudly on an unknown one. */
export function parseTargets(value: string): Target[] {
	const names = value.split(',').map((t) => t.trim());
	const unknown = names.filter((t) => !targets.includes(t as Target));
	if (unknown.length > 0)
		throw new Error(`unknown target ${unknown.join(', ')}: expected ${targets.join(', ')}`);
	return names as Target[];
}

/**
 * SERVER_ENV="NAME=value,NAME=value": more environment for our server's processes (an allocator setting, a
 * window), so an experiment needs no code change. OURS_B_ENV, in the same form, is added for target `ours-b` only
 * (after SERVER_ENV): ours and a variant of it in one run, alternating with REPEATS, so a before/after has its
 * baseline in the same run. Fails loudly on an entry that is not NAME=value.
 */
function serverEnv(target: Target): Record<string, string> {
	return { ...envEntries('SERVER_ENV'), ...(target === 'ours-b' ? envEntries('OURS_B_ENV') : {}) };
}

function envEntries(name: string): Record<string, string> {
	const raw = process.env[name]?.trim();
	if (!raw) return {};
	return Object.fromEntries(
		raw.split(',').map((entry) => {
			const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(entry.trim());
			if (!match) throw new Error(`${name}: expected NAME=value, got "${entry}"`);
			return [match[1] as string, match[2] as string];
		}),
	);
}

/**
 * Node's flags for our server: the ones it ships with (server/node-flags.ts; the peers run with Node's defaults), or
 * OURS_NODE_FLAGS="--flag --other" instead of them (empty: none, for a before/after of a flag in one run each).
 * Target `ours-b` takes OURS_B_NODE_FLAGS instead when it is set: a flag's before/after in one run.
 */
function oursNodeFlags(target: Target): string[] {
	const name =
		target === 'ours-b' && process.env.OURS_B_NODE_FLAGS !== undefined
			? 'OURS_B_NODE_FLAGS'
			: 'OURS_NODE_FLAGS';
	const raw = process.env[name];
	if (raw === undefined) return [...nodeFlags];
	const flags = raw.split(/\s+/).filter(Boolean);
	const bad = flags.find((f) => !f.startsWith('--'));
	if (bad) throw new Error(`${name}: expected flags like --max-semi-space-size=8, got "${bad}"`);
	return flags;
}

/** Reads a positive number from the environment, failing loudly on anything else. */
export function envNumber(name: string, fallback: number): number {
	const raw = process.env[name];
	if (raw === undefined || raw === '') return fallback;
	const value = Number(raw);
	if (!Number.isFinite(value) || value <= 0)
		throw new Error(`${name} must be a positive number, got "${raw}"`);
	return value;
}

function procStats(pid: number): { cpuMs: number; rssMb: number } {
	const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
	const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
	const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
	return { cpuMs: (Number(stat[11]) + Number(stat[12])) * TICK_MS, rssMb: rssKb / 1024 };
}

/** CPU time the whole machine spent busy (all cores, every process), ms. */
export function machineBusyMs(): number {
	const cpu =
		fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
	// user nice system idle iowait irq softirq steal
	const busy = (cpu[0] ?? 0) + (cpu[1] ?? 0) + (cpu[2] ?? 0) + (cpu[5] ?? 0) + (cpu[6] ?? 0) + (cpu[7] ?? 0);
	return busy * TICK_MS;
}

/**
 * How busy the load generator's cores were, from their lines of /proc/stat: busy ms summed over those cores, and
 * how many there are. With PIN they hold the generator and the Postgres backends alone; without, every core.
 */
export function generatorCoresBusyMs(): { busyMs: number; cores: number } {
	const [first, last] = pinning ? cores.generator.split('-').map(Number) : [0, os.availableParallelism() - 1];
	let busyMs = 0;
	for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
		const match = /^cpu(\d+)\s+(.*)$/.exec(line);
		const cpu = Number(match?.[1]);
		if (!match || cpu < (first ?? 0) || cpu > (last ?? first ?? 0)) continue;
		const t = match[2]!.split(/\s+/).map(Number);
		// user nice system idle iowait irq softirq steal
		busyMs += ((t[0] ?? 0) + (t[1] ?? 0) + (t[2] ?? 0) + (t[5] ?? 0) + (t[6] ?? 0) + (t[7] ?? 0)) * TICK_MS;
	}
	return { busyMs, cores: (last ?? first ?? 0) - (first ?? 0) + 1 };
}

/**
 * CPU time Postgres's processes on this machine spent (every backend and helper that runs now, and what its
 * finished backends spent, which the postmaster collects), ms; 0 where none is visible. The cluster's, as the WAL.
 */
export function postgresBusyMs(): number {
	let ticks = 0;
	for (const entry of fs.readdirSync('/proc')) {
		if (!/^\d+$/.test(entry)) continue;
		try {
			if (fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
			const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
			// utime, stime, and the children's cutime, cstime (fields 14–17 of proc(5))
			ticks += Number(stat[11]) + Number(stat[12]) + Number(stat[13]) + Number(stat[14]);
		} catch {
			// the process ended between the listing and the read
		}
	}
	return ticks * TICK_MS;
}

/**
 * Connections the kernel dropped because a listen queue was full, since boot (every listener on this machine:
 * `TcpExtListenOverflows` of `nstat`); 0 where /proc/net/netstat is missing.
 */
export function listenOverflows(): number {
	const lines = fs.existsSync('/proc/net/netstat')
		? fs.readFileSync('/proc/net/netstat', 'utf8').split('\n')
		: [];
	const at = lines.findIndex((line) => line.startsWith('TcpExt:'));
	const keys = lines[at]?.split(/\s+/) ?? [];
	const values = lines[at + 1]?.split(/\s+/) ?? [];
	return Number(values[keys.indexOf('ListenOverflows')] ?? 0) || 0;
}

export interface BenchUser {
	id: string;
	token: string;
}

export interface RunningTarget {
	target: Target;
	/** One URL per node; client `i` of room `r` connects to `urlFor(i)`. */
	urlFor(clientIndex: number): string;
	users: BenchUser[];
	rooms: string[];
	/** The index (in `rooms`) of client `i`'s room. */
	roomOf(clientIndex: number): number;
	/** Our targets' database (a throwaway one, dropped by `stop`). */
	databaseUrl?: string;
	/** The throwaway database of the seed's design and ours (`databaseCounters` reads its statistics). */
	databaseName?: string;
	/** CPU time and RSS summed over the target's processes. */
	stats(): { cpuMs: number; rssMb: number };
	/**
	 * Runs a full garbage collection in every process of the target and waits for it; returns the heap in use
	 * after it, and how late each event loop ran since the previous call (the worst process's p99 and max).
	 */
	gc(): Promise<{
		heapUsedMb: number;
		heapTotalMb: number;
		externalMb: number;
		loopDelayP99Ms: number;
		loopDelayMaxMs: number;
		/** The longest garbage-collection pause since the previous call (any process), ms. */
		gcMaxMs: number;
	}>;
	/**
	 * With CPU_PROF (or ALLOC_PROF, PERF_PROF) set, `start` starts each process's profiler and `stop` stops it and
	 * waits until every process's profile is written; without them, nothing. Returns the files written (on `stop`).
	 */
	profile(action: 'start' | 'stop'): Promise<string[]>;
	/**
	 * Moves the Postgres backends serving this target's database (the seed's design and ours) to the generator's
	 * cores, so that only the server runs on its core; nothing when not pinning. Call it before each window: a
	 * pool opens connections as it needs them.
	 */
	pinDatabase(): Promise<void>;
	/** Lines the target logged at level warn or above (ours), or on stderr. */
	problems(): string[];
	stop(): Promise<void>;
}

async function ready(server: ServerProcess, line: RegExp): Promise<void> {
	const deadline = Date.now() + 60_000;
	while (!line.test(server.output())) {
		if (Date.now() > deadline || server.proc.exitCode !== null)
			throw new Error(`target did not start:\n${server.output().slice(-3000)}`);
		await sleep(50);
	}
}

/**
 * Starts `target` with `clients` users over `rooms` rooms (client `i` is a member of room `i % rooms`).
 * `env` is added to our server's environment.
 */
export async function startTarget(
	target: Target,
	{
		clients,
		rooms: roomCount,
		env = {},
		grouped = false,
	}: {
		clients: number;
		rooms: number;
		env?: Record<string, string>;
		/** Clients fill the rooms one after another (client `i` in room `i ÷ (clients ÷ rooms)`), not in turn. */
		grouped?: boolean;
	},
): Promise<RunningTarget> {
	const perRoom = Math.ceil(clients / roomCount);
	const roomOf = (i: number) => (grouped ? Math.floor(i / perRoom) : i % roomCount);
	const users: BenchUser[] = Array.from({ length: clients }, () => ({ id: randomUUID(), token: 'bench' }));
	const rooms = Array.from({ length: roomCount }, () => randomUUID());
	const servers: ServerProcess[] = [];
	const ports: number[] = [];
	let cleanup = async () => {};
	let databaseUrl: string | undefined;

	const prefix = `bench-${randomUUID().slice(0, 8)}`;
	const twoNodes = target === 'ours-2node' || target === 'bare-2node';
	const dropRedisKeys = async () => {
		const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
		await redis.connect();
		const keys = await redis.keys(`${prefix}*`);
		if (keys.length > 0) await redis.del(...keys);
		redis.disconnect();
	};
	let dbName: string | undefined;
	if (target === 'seed') {
		dbName = `bench_seed_${randomUUID().slice(0, 8)}`;
		await admin(`CREATE DATABASE ${dbName}`);
		cleanup = async () => {
			await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
		};
		const url = new URL(adminUrl);
		url.pathname = `/${dbName}`;
		// The seed's table: a message per row, its id the key that makes a resend a no-op, and the index its
		// history query needs.
		const db = new pg.Client({ connectionString: url.toString() });
		await db.connect();
		await db.query(`CREATE TABLE messages (
			client_msg_id uuid PRIMARY KEY, room_id uuid NOT NULL, sender_id uuid NOT NULL, content text NOT NULL,
			created_at timestamptz NOT NULL DEFAULT now())`);
		await db.query('CREATE INDEX messages_room ON messages (room_id, created_at)');
		await db.end();
		const tokens = new TokenService(parseConfig({ DATABASE_URL: url.toString(), JWT_SECRET }));
		for (const [i, u] of users.entries())
			u.token = await tokens.signAccess({ userId: u.id, name: `bench${i}` });
		const port = await freePort();
		ports.push(port);
		const server = spawnServer(
			{ PORT: String(port), DATABASE_URL: url.toString(), JWT_SECRET, ...profileEnv(target) },
			[...pinned('server'), process.execPath, ...targetArgs, 'bench/targets/seed-socketio.ts'],
		);
		servers.push(server);
		try {
			await ready(server, /bench target listening/);
		} catch (error) {
			await cleanup();
			throw error;
		}
	} else if (target === 'bare' || target === 'yws' || target === 'bare-2node') {
		const script =
			target === 'yws'
				? path.join(repoRoot, 'node_modules/@y/websocket-server/src/server.js')
				: 'bench/targets/bare-hocuspocus.ts';
		for (let node = 0; node < (twoNodes ? 2 : 1); node++) {
			const port = await freePort();
			ports.push(port);
			const server = spawnServer(
				{
					PORT: String(port),
					HOST: '127.0.0.1',
					...profileEnv(target),
					...(twoNodes ? { REDIS_URL: redisUrl, REDIS_PREFIX: prefix } : {}),
				},
				[...pinned('server'), process.execPath, ...targetArgs, script],
			);
			servers.push(server);
			await ready(server, target === 'yws' ? /running at/ : /bench target listening/);
		}
		if (twoNodes) cleanup = dropRedisKeys;
	} else {
		dbName = `bench_load_${randomUUID().slice(0, 8)}`;
		await admin(`CREATE DATABASE ${dbName}`);
		cleanup = async () => {
			await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
			if (twoNodes) await dropRedisKeys();
		};
		const url = new URL(adminUrl);
		url.pathname = `/${dbName}`;
		databaseUrl = url.toString();
		const config = parseConfig({ DATABASE_URL: url.toString(), JWT_SECRET });
		const db = await openDb(config, createLogger('warn'));
		try {
			await migrate(db);
			// Users, rooms and memberships straight into the database: registering 1,000 users through scrypt is
			// not what is measured. Tokens are signed with the server's secret, as its login would.
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
				[users.map((_, i) => rooms[roomOf(i)]), users.map((u) => u.id)],
			);
			// The statistics a database in use has (autovacuum would gather them within a minute): without them
			// the planner takes the freshly filled tables for small ones and scans them whole.
			await db.query('ANALYZE users, rooms, memberships');
		} finally {
			await db.close();
		}
		const tokens = new TokenService(config);
		for (const [i, u] of users.entries())
			u.token = await tokens.signAccess({ userId: u.id, name: `bench${i}` });
		for (let node = 0; node < (twoNodes ? 2 : 1); node++) {
			const port = await freePort();
			ports.push(port);
			servers.push(
				spawnServer(
					{
						PORT: String(port),
						DATABASE_URL: url.toString(),
						JWT_SECRET,
						LOG_LEVEL: 'info',
						WRITE_UPDATES_PER_10S: '1000000',
						WRITE_MESSAGES_PER_10S: '1000000',
						WS_CONNECTIONS_PER_IP_PER_MINUTE: '1000000',
						AUTH_RATE_LIMIT_PER_MINUTE: '1000000',
						DATA_DIR: path.join(repoRoot, 'node_modules', '.cache', `bench-${dbName}`),
						...(target === 'ours-relay-first' ? { BENCH_RELAY: 'before-commit' } : {}),
						...(target === 'ours-2node' ? { REDIS_URL: redisUrl, REDIS_PREFIX: prefix } : {}),
						...profileEnv(target),
						...serverEnv(target),
						...env,
					},
					[
						...pinned('server'),
						process.execPath,
						...oursNodeFlags(target),
						...targetArgs,
						'bench/bench-server.ts',
					],
				),
			);
		}
		try {
			await Promise.all(servers.map((s) => ready(s, /server listening/)));
		} catch (error) {
			for (const s of servers) s.proc.kill('SIGKILL');
			await cleanup();
			throw error;
		}
	}

	const pids = servers.map((s) => s.proc.pid as number);
	let recordings: PerfRecording[] = [];
	const gcLines = () => servers.map((s) => s.output().split('bench gc done').length);
	return {
		target,
		users,
		rooms,
		roomOf,
		databaseUrl,
		databaseName: dbName,
		urlFor: (i) => {
			const port = ports[Math.floor(i / roomCount) % ports.length];
			if (target === 'seed') return `http://127.0.0.1:${port}`;
			return target.startsWith('ours') ? `ws://127.0.0.1:${port}/collab` : `ws://127.0.0.1:${port}`;
		},
		pinDatabase: async () => {
			if (!pinning || !dbName) return;
			const backends = await admin<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [
				dbName,
			]);
			for (const { pid } of backends) {
				try {
					pin(pid, 'generator');
				} catch {
					// The backend ended meanwhile (the pool closed an idle connection).
				}
			}
		},
		stats: () =>
			pids.map(procStats).reduce((a, b) => ({ cpuMs: a.cpuMs + b.cpuMs, rssMb: a.rssMb + b.rssMb }), {
				cpuMs: 0,
				rssMb: 0,
			}),
		gc: async () => {
			const before = gcLines();
			for (const pid of pids) process.kill(pid, 'SIGUSR2');
			const deadline = Date.now() + 10_000;
			while (gcLines().some((n, i) => n <= (before[i] as number))) {
				if (Date.now() > deadline) throw new Error(`${target}: no answer to SIGUSR2 (gc)`);
				await sleep(20);
			}
			const last = servers.map((s) => {
				const line = s
					.output()
					.split('\n')
					.findLast((l) => l.includes('bench gc done'));
				return JSON.parse(line ?? '{}') as {
					heapUsedMb: number;
					heapTotalMb: number;
					externalMb: number;
					loopDelayP99Ms: number;
					loopDelayMaxMs: number;
					gcMaxMs: number;
				};
			});
			return {
				heapUsedMb: last.reduce((a, l) => a + l.heapUsedMb, 0),
				heapTotalMb: last.reduce((a, l) => a + l.heapTotalMb, 0),
				externalMb: last.reduce((a, l) => a + l.externalMb, 0),
				loopDelayP99Ms: Math.max(...last.map((l) => l.loopDelayP99Ms)),
				loopDelayMaxMs: Math.max(...last.map((l) => l.loopDelayMaxMs)),
				gcMaxMs: Math.max(...last.map((l) => l.gcMaxMs)),
			};
		},
		profile: async (action) => {
			if (perfDir) {
				if (action === 'start') {
					recordings = await Promise.all(pids.map((pid) => recordPerf(perfDir as string, target, pid)));
					return [];
				}
				const stopping = recordings;
				recordings = [];
				return Promise.all(stopping.map((r) => r.stop()));
			}
			if (!profileDir) return [];
			const line = action === 'start' ? 'bench profile started' : 'bench profile written';
			const count = () => servers.map((s) => s.output().split(line).length);
			const before = count();
			for (const pid of pids) process.kill(pid, 'SIGWINCH');
			const deadline = Date.now() + 30_000;
			while (count().some((n, i) => n <= (before[i] as number))) {
				if (Date.now() > deadline) throw new Error(`${target}: no answer to SIGWINCH (profile ${action})`);
				await sleep(50);
			}
			return servers.flatMap((s) =>
				action === 'stop'
					? [
							(
								JSON.parse(
									s
										.output()
										.split('\n')
										.findLast((l) => l.includes(line)) ?? '{}',
								) as { file: string }
							).file,
						]
					: [],
			);
		},
		problems: () =>
			servers.flatMap((s) =>
				s
					.output()
					.split('\n')
					.filter((line) => (line.startsWith('{') ? /"level":[456]0/.test(line) : /error/i.test(line))),
			),
		stop: async () => {
			for (const s of servers) s.proc.kill('SIGTERM');
			await Promise.all(servers.map((s) => s.exited));
			for (const pid of pids) removeJitDump(pid);
			await cleanup();
		},
	};
}

export function clientSpec(running: RunningTarget, index: number): ClientSpec {
	const roomIndex = running.roomOf(index);
	const user = running.users[index] as BenchUser;
	return {
		target: running.target,
		index,
		roomIndex,
		room: running.rooms[roomIndex] as string,
		url: running.urlFor(index),
		userId: user.id,
		token: user.token,
	};
}

/** Connects clients `0 … count-1` in this process, all at once, and waits until every one has synced. */
export async function connectAll(running: RunningTarget, count: number): Promise<DocClient[]> {
	process.setMaxListeners(Math.max(process.getMaxListeners(), count + 20));
	const clients = Array.from({ length: count }, (_, i) => connectDocClient(clientSpec(running, i)));
	const deadline = Date.now() + 120_000;
	while (!clients.every((c) => c.synced())) {
		if (Date.now() > deadline)
			throw new Error(`${running.target}: ${clients.filter((c) => !c.synced()).length} clients never synced`);
		await sleep(100);
	}
	return clients;
}

export interface Window {
	seconds: number;
	deliveries: number;
	/** Sorted latencies of the deliveries observed in the window, ms. */
	latencies: number[];
	serverCpuMs: number;
	/** CPU the load generator's processes used in the window, ms. */
	generatorCpuMs: number;
	/** CPU the whole machine used in the window (server, generator, Postgres, anything else), ms. */
	machineCpuMs: number;
	/**
	 * How late the generator's event loops ran in the window (the worst process's worst case, ms): latencies are
	 * observed there, so a delivery can look this much later than it was.
	 */
	generatorLoopDelayMaxMs: number;
	/** The generator processes' longest garbage-collection pause in the window, ms. */
	generatorGcMaxMs: number;
	rssMb: number;
}

/** How many processes the load generator runs in (GENERATORS). */
const GENERATORS = envNumber('GENERATORS', 4);

/**
 * How long connecting takes (CONNECT_SPREAD_MS): the clients connect evenly over it. Their presence renewals are
 * then spread over the 15-s renewal period by the generators (see bench/generator.ts).
 */
const CONNECT_SPREAD_MS = envNumber('CONNECT_SPREAD_MS', 3_000);

/**
 * The simulated clients, spread over GENERATORS processes (bench/generator.ts; client `i` lives in process
 * `i % GENERATORS`). Every client writes one message every `intervalMs` (random phase), as the app writes one
 * (one new key in `messages`), and every other member's observation of it is a delivery, timed from the
 * writer's local write.
 */
export class Fleet {
	readonly #running: RunningTarget;
	readonly #workers: ChildProcess[];
	readonly #epoch = process.hrtime.bigint();

	private constructor(running: RunningTarget, workers: ChildProcess[]) {
		this.#running = running;
		this.#workers = workers;
	}

	/** Starts the generators and connects `count` clients over `spreadMs`; resolves once every one synced. */
	static async connect(
		running: RunningTarget,
		count: number,
		{ spreadMs = CONNECT_SPREAD_MS, generators = GENERATORS } = {},
	): Promise<Fleet> {
		const workers = Array.from({ length: Math.min(generators, count) }, () =>
			fork(path.join(repoRoot, 'bench', 'generator.ts'), [], {
				cwd: repoRoot,
				serialization: 'advanced',
				stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
			}),
		);
		for (const worker of workers) pin(worker.pid as number, 'generator');
		const fleet = new Fleet(running, workers);
		try {
			const members = running.rooms.map(
				(_, r) => Array.from({ length: count }, (_, i) => i).filter((i) => running.roomOf(i) === r).length,
			);
			// The first client connects a little after every generator has received its share.
			const connectAtUs = Number(process.hrtime.bigint() - fleet.#epoch) / 1_000 + 500_000;
			await Promise.all(
				workers.map(async (worker, w) => {
					worker.send({
						type: 'connect',
						epoch: String(fleet.#epoch),
						clients: Array.from({ length: count }, (_, i) => i)
							.filter((i) => i % workers.length === w)
							.map((i) => clientSpec(running, i)),
						members,
						connectAtUs,
						spreadUs: spreadMs * 1_000,
						total: count,
					} satisfies ToGenerator);
					const answer = await fleet.#next(worker, 'synced', 180_000);
					if (answer.type === 'failed') throw new Error(`${running.target}: ${answer.error}`);
				}),
			);
		} catch (error) {
			await fleet.close();
			throw error;
		}
		return fleet;
	}

	/** The next message of `type` (or a failure) from `worker`. */
	#next<T extends FromGenerator['type']>(
		worker: ChildProcess,
		type: T,
		timeoutMs = 30_000,
	): Promise<Extract<FromGenerator, { type: T | 'failed' }>> {
		return new Promise((resolve, reject) => {
			const timer = setTimeout(
				() => done(new Error(`load generator: no ${type} in ${timeoutMs} ms`)),
				timeoutMs,
			);
			const onMessage = (message: FromGenerator) => {
				if (message.type === type || message.type === 'failed')
					done(null, message as Extract<FromGenerator, { type: T | 'failed' }>);
			};
			const onExit = (code: number | null) => done(new Error(`load generator exited (${code})`));
			const done = (error: Error | null, message?: Extract<FromGenerator, { type: T | 'failed' }>) => {
				clearTimeout(timer);
				worker.off('message', onMessage);
				worker.off('exit', onExit);
				if (error) reject(error);
				else resolve(message as Extract<FromGenerator, { type: T | 'failed' }>);
			};
			worker.on('message', onMessage);
			worker.on('exit', onExit);
		});
	}

	#all(message: ToGenerator): void {
		for (const w of this.#workers) w.send(message);
	}

	/** Every client writes one message every `intervalMs` from now on (replacing any earlier rate). */
	start(intervalMs: number): void {
		this.#all({ type: 'start', intervalMs });
	}

	stop(): void {
		this.#all({ type: 'stop' });
	}

	/** Messages sent, and deliveries still missing (due to the other members, not observed yet). */
	async counts(): Promise<{ sent: number; missing: number; lastDeliveryUs: number }> {
		const all = await Promise.all(
			this.#workers.map(async (w) => {
				const answer = this.#next(w, 'counts');
				w.send({ type: 'counts' } satisfies ToGenerator);
				const c = await answer;
				if (c.type !== 'counts') throw new Error(c.error);
				return c;
			}),
		);
		return {
			sent: all.reduce((a, c) => a + c.sent, 0),
			missing: all.reduce((a, c) => a + c.due, 0) - all.reduce((a, c) => a + c.observed, 0),
			lastDeliveryUs: Math.max(...all.map((c) => c.lastDeliveryUs)),
		};
	}

	/** Waits until no delivery has been observed for `quietMs` (a backlog drained), at most `maxMs`. */
	async settle(quietMs = 1_000, maxMs = 60_000): Promise<void> {
		const deadline = Date.now() + maxMs;
		const since = Number(process.hrtime.bigint() - this.#epoch) / 1_000;
		while (Date.now() < deadline) {
			await sleep(Math.min(quietMs, 250));
			const now = Number(process.hrtime.bigint() - this.#epoch) / 1_000;
			const last = Math.max(since, (await this.counts()).lastDeliveryUs);
			if (now - last >= quietMs * 1_000) return;
		}
	}

	/** Records every delivery for `seconds`. */
	async measure(seconds: number): Promise<Window> {
		const before = this.#running.stats();
		const machine0 = machineBusyMs();
		const windows = this.#workers.map((w) => this.#next(w, 'window', seconds * 1_000 + 30_000));
		const t0 = performance.now();
		this.#all({ type: 'begin' });
		await sleep(seconds * 1_000);
		this.#all({ type: 'end' });
		const elapsed = (performance.now() - t0) / 1_000;
		const after = this.#running.stats();
		const machineCpuMs = machineBusyMs() - machine0;
		const parts = await Promise.all(windows);
		const latencies: number[] = [];
		let generatorCpuMs = 0;
		let generatorLoopDelayMaxMs = 0;
		let generatorGcMaxMs = 0;
		for (const p of parts) {
			if (p.type !== 'window') throw new Error(p.error);
			for (const l of p.latencies) latencies.push(l);
			generatorCpuMs += p.cpuMs;
			generatorLoopDelayMaxMs = Math.max(generatorLoopDelayMaxMs, p.loopDelayMaxMs);
			generatorGcMaxMs = Math.max(generatorGcMaxMs, p.gcMaxMs);
		}
		return {
			seconds: elapsed,
			deliveries: latencies.length,
			latencies: latencies.sort((a, b) => a - b),
			serverCpuMs: after.cpuMs - before.cpuMs,
			generatorCpuMs,
			machineCpuMs,
			generatorLoopDelayMaxMs,
			generatorGcMaxMs,
			rssMb: after.rssMb,
		};
	}

	/** Disconnects every client and ends the generators. */
	async close(): Promise<void> {
		await Promise.all(
			this.#workers.map(async (w) => {
				if (w.exitCode !== null || w.signalCode !== null) return;
				const exited = new Promise((resolve) => w.once('exit', resolve));
				if (w.connected) w.send({ type: 'close' } satisfies ToGenerator);
				const timer = setTimeout(() => w.kill('SIGKILL'), 10_000);
				await exited;
				clearTimeout(timer);
			}),
		);
	}
}

/** The figures of a window, as the tables show them. */
export function summarize(w: Window) {
	return {
		deliveriesPerSecond: w.deliveries / w.seconds,
		p50Ms: percentile(w.latencies, 50),
		p95Ms: percentile(w.latencies, 95),
		p99Ms: percentile(w.latencies, 99),
		serverCpuPerDeliveryUs: w.deliveries > 0 ? (w.serverCpuMs * 1_000) / w.deliveries : NaN,
		/** Cores busy on average: the server, the load generator (all its processes), the whole machine. */
		serverCores: w.serverCpuMs / 1_000 / w.seconds,
		generatorCores: w.generatorCpuMs / 1_000 / w.seconds,
		machineCores: w.machineCpuMs / 1_000 / w.seconds,
		rssMb: w.rssMb,
	};
}

export const fmt = (n: number, digits = 1) =>
	Number.isFinite(n)
		? n.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits })
		: '–';

/** Writes `data` as bench/results/<name>.json. */
export function writeResult(name: string, data: unknown): string {
	const out = path.join(repoRoot, 'bench', 'results', `${name}.json`);
	fs.mkdirSync(path.dirname(out), { recursive: true });
	fs.writeFileSync(out, `${JSON.stringify(data, null, 2)}\n`);
	return out;
}

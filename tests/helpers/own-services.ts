import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { freePort } from './process.ts';

/*
 * A Postgres server and a Redis server of a test's own, for faults that cannot be done to the shared ones (a
 * restart, a stop, a read-only database, a Redis killed and restarted empty).
 */

/** The folder of Postgres's server programs (initdb, pg_ctl), or null when this machine has none. */
export function postgresBinDir(): string | null {
	try {
		const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
		if (fs.existsSync(path.join(dir, 'initdb'))) return dir;
	} catch {
		// Not on PATH: look where Debian puts it.
	}
	const root = '/usr/lib/postgresql';
	if (!fs.existsSync(root)) return null;
	const versions = fs.readdirSync(root).sort((a, b) => Number(b) - Number(a));
	for (const v of versions)
		if (fs.existsSync(path.join(root, v, 'bin', 'initdb'))) return path.join(root, v, 'bin');
	return null;
}

export const redisServerPath = (): string | null => {
	try {
		return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || null;
	} catch {
		return null;
	}
};

export interface OwnPostgres {
	port: number;
	/** A URL of the test's database, with `application_name` so its sessions can be told apart. */
	url(applicationName: string, port?: number): string;
	query(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
	/** Crash-like restart (`-m immediate`: no checkpoint, every session cut), back when it accepts again. */
	restart(): Promise<void>;
	stop(): Promise<void>;
	start(): Promise<void>;
	/** Every new transaction read-only (default_transaction_read_only, reloaded into every session), or back. */
	readOnly(on: boolean): Promise<void>;
	close(): Promise<void>;
}

/**
 * initdb into a temporary folder and a server on a free port. Postgres refuses to run as root: as root, its
 * programs run as the `postgres` user.
 */
export async function startOwnPostgres(binDir: string): Promise<OwnPostgres> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-own-pg-'));
	const asRoot = process.getuid?.() === 0;
	if (asRoot) {
		const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
		const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
		fs.chownSync(dir, uid, gid);
	}
	const run = (program: string, args: string[]) => {
		const full = path.join(binDir, program);
		const [command, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', full, ...args]] : [full, args];
		execFileSync(command, argv, { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir });
	};
	const data = path.join(dir, 'data');
	run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
	const port = await freePort();
	const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=off`;
	const pgCtl = (...args: string[]) =>
		run('pg_ctl', ['-D', data, '-l', path.join(dir, 'server.log'), '-w', '-t', '60', ...args]);
	pgCtl('-o', options, 'start');
	const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
	const once = async (sql: string, params?: unknown[], url = admin) => {
		const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
		await client.connect();
		try {
			return await client.query(sql, params);
		} finally {
			await client.end().catch(() => undefined);
		}
	};
	await once('CREATE DATABASE chat');
	const url = (applicationName: string, at = port) =>
		`postgres://postgres@127.0.0.1:${at}/chat?application_name=${applicationName}`;
	return {
		port,
		url,
		query: (sql, params) => once(sql, params, url('fault-suite')),
		async restart() {
			pgCtl('-m', 'immediate', 'restart');
		},
		async stop() {
			pgCtl('-m', 'fast', 'stop');
		},
		async start() {
			pgCtl('-o', options, 'start');
		},
		async readOnly(on) {
			await once(`ALTER SYSTEM SET default_transaction_read_only = ${on ? 'on' : 'off'}`);
			await once('SELECT pg_reload_conf()');
		},
		async close() {
			try {
				pgCtl('-m', 'immediate', 'stop');
			} catch {
				// Already stopped.
			}
			fs.rmSync(dir, { recursive: true, force: true });
		},
	};
}

export interface OwnRedis {
	url: string;
	/** SIGKILL: everything it held is gone (it keeps nothing on disk). */
	kill(): Promise<void>;
	/** Starts it again, empty, on the same port. */
	start(): Promise<void>;
	close(): Promise<void>;
}

/** A redis-server on a free port that keeps nothing on disk. */
export async function startOwnRedis(program: string): Promise<OwnRedis> {
	const port = await freePort();
	const url = `redis://127.0.0.1:${port}`;
	let proc: ChildProcess | null = null;
	const start = async () => {
		proc = spawn(
			program,
			['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
			{
				stdio: 'ignore',
			},
		);
		const deadline = Date.now() + 10_000;
		for (;;) {
			const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
			probe.on('error', () => undefined);
			try {
				await probe.connect();
				await probe.ping();
				return;
			} catch (error) {
				if (Date.now() > deadline)
					throw new Error(`redis-server did not start on port ${port}`, { cause: error });
				await new Promise((resolve) => setTimeout(resolve, 100));
			} finally {
				probe.disconnect();
			}
		}
	};
	const kill = async () => {
		const running = proc;
		proc = null;
		if (!running || running.exitCode !== null) return;
		const gone = new Promise((resolve) => running.once('exit', resolve));
		running.kill('SIGKILL');
		await gone;
	};
	await start();
	return { url, kill, start, close: kill };
}

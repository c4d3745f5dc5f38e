import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startApp, type App } from '../../server/app.ts';
import { parseConfig } from '../../server/config.ts';
import { createLogger } from '../../server/log.ts';
import { createTestDatabase, type Backend } from './backends.ts';
import { serverLogFile } from './log-audit.ts';
import { seedPglite } from './pglite-template.ts';

export interface TestServer {
	backend: Backend;
	url: string;
	wsUrl: string;
	app: App;
	dataDir: string;
	databaseUrl: string | undefined;
	logFile: string;
	/** Stops the server (flushing everything) and starts it again on the same data. */
	restart(): Promise<void>;
	/** Stops the server and removes its data. */
	close(): Promise<void>;
	api: Api;
}

export function tmpDir(prefix: string): string {
	return fs.mkdtempSync(path.join(os.tmpdir(), `chat-${prefix}-`));
}

/** Starts the real server on port 0 against a fresh PGlite directory or a fresh Postgres database. */
export async function startTestServer(
	backend: Backend,
	env: Record<string, string> = {},
	options: { databaseUrl?: string } = {},
): Promise<TestServer> {
	const dataDir = tmpDir('data');
	if (backend === 'pglite' && !options.databaseUrl && !env.DATABASE_URL) await seedPglite(dataDir);
	// A given databaseUrl belongs to the caller (another node of the same cluster): it is not dropped here.
	const db = backend === 'postgres' && !options.databaseUrl ? await createTestDatabase() : undefined;
	const databaseUrl = options.databaseUrl ?? db?.url;
	const logFile = serverLogFile('in-process') ?? path.join(dataDir, 'server.log');
	const config = parseConfig({
		NODE_ENV: 'test',
		PORT: '0',
		DATA_DIR: dataDir,
		STATIC_DIR: path.join(dataDir, 'no-client'),
		LOG_LEVEL: 'debug',
		...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
		...env,
	});
	const destination = pino.destination({ dest: logFile, sync: true });
	const log = createLogger(config.LOG_LEVEL, destination);

	const server: TestServer = {
		backend,
		dataDir,
		databaseUrl,
		logFile,
		app: await startApp(config, log),
		get url() {
			return this.app.url;
		},
		get wsUrl() {
			return `${this.app.url.replace(/^http/, 'ws')}/collab`;
		},
		async restart() {
			await this.app.stop();
			this.app = await startApp({ ...config, PORT: Number(new URL(this.app.url).port) }, log);
		},
		async close() {
			await this.app.stop();
			await db?.drop();
			fs.rmSync(dataDir, { recursive: true, force: true });
		},
		get api() {
			return new Api(this.app.url);
		},
	};
	return server;
}

export interface ApiResponse<T = any> {
	status: number;
	body: T;
	headers: Headers;
}

/** A small JSON client for the HTTP API. */
export class Api {
	readonly base: string;
	constructor(base: string) {
		this.base = base;
	}

	async request<T = any>(
		method: string,
		pathname: string,
		opts: { body?: unknown; raw?: string; token?: string; headers?: Record<string, string> } = {},
	): Promise<ApiResponse<T>> {
		const headers: Record<string, string> = { ...opts.headers };
		if (opts.token) headers.authorization = `Bearer ${opts.token}`;
		let body: string | undefined;
		if (opts.raw !== undefined) {
			body = opts.raw;
			headers['content-type'] ??= 'application/json';
		} else if (opts.body !== undefined) {
			body = JSON.stringify(opts.body);
			headers['content-type'] = 'application/json';
		}
		const res = await fetch(this.base + pathname, { method, headers, body });
		const text = await res.text();
		let parsed: unknown = text;
		if ((res.headers.get('content-type') ?? '').includes('application/json') && text)
			parsed = JSON.parse(text);
		return { status: res.status, body: parsed as T, headers: res.headers };
	}

	get = <T = any>(p: string, token?: string) => this.request<T>('GET', p, { token });
	post = <T = any>(p: string, body?: unknown, token?: string) => this.request<T>('POST', p, { body, token });
	delete = <T = any>(p: string, token?: string) => this.request<T>('DELETE', p, { token });
	patch = <T = any>(p: string, body?: unknown, token?: string) =>
		this.request<T>('PATCH', p, { body, token });

	/** Registers a user with a unique name derived from `prefix`. */
	async register(prefix = 'user') {
		const name = `${prefix}_${Math.random().toString(36).slice(2, 10)}`;
		const res = await this.post('/api/auth/register', { name, password: 'a long enough passphrase' });
		if (res.status !== 201) throw new Error(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
		return res.body as { user: { id: string; name: string }; accessToken: string; refreshToken: string };
	}

	async createGroup(token: string, memberIds: string[], name = 'Test room') {
		const res = await this.post('/api/rooms', { name, isGroup: true, memberIds }, token);
		if (res.status !== 201) throw new Error(`create room failed: ${res.status} ${JSON.stringify(res.body)}`);
		return res.body as { id: string; members: { id: string; role: string }[] };
	}
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Upload } from 'tus-js-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { createTestDatabase } from '../helpers/backends.ts';
import { connect, waitFor } from '../helpers/collab.ts';
import { freePort, repoRoot } from '../helpers/process.ts';
import { Api, startTestServer, tmpDir, type TestServer } from '../helpers/server.ts';

const nginx = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));
if (!nginx) {
	const message = 'nginx is not installed (apt-get install nginx-light)';
	if (process.env.CI) throw new Error(`${message}: CI needs it to test the compose proxy configuration`);
	console.warn(`\n!!! ${message}\n!!! SKIPPING the reverse proxy test.\n`);
}

/**
 * deploy/nginx.conf is the proxy of docker-compose.yml. This runs that very file (upstreams pointed at two
 * local nodes) and drives the app through it, WebSocket included.
 */
describe.skipIf(!nginx || !inject('postgresAdminUrl'))('the reverse proxy of docker-compose.yml', () => {
	const nodes: TestServer[] = [];
	let proxy: ChildProcess;
	let proxyUrl: string;
	let drop: () => Promise<void>;
	const dir = tmpDir('nginx');

	beforeAll(async () => {
		const db = await createTestDatabase();
		drop = db.drop;
		const env = {
			JWT_SECRET: 'cluster-secret-for-this-test-0123456789',
			// nginx reaches the nodes from 127.0.0.1; the hostile client below comes from 127.0.0.3.
			TRUST_PROXY: '127.0.0.1',
			AUTH_RATE_LIMIT_PER_MINUTE: '20',
			WS_CONNECTIONS_PER_IP_PER_MINUTE: '30',
			// One data directory for both nodes, as docker-compose.yml shares its `files` volume: either node
			// serves every attachment and resumes every upload.
			DATA_DIR: tmpDir('shared-data'),
		};
		for (let i = 0; i < 2; i++) nodes.push(await startTestServer('postgres', env, { databaseUrl: db.url }));
		const port = await freePort();
		const site = fs
			.readFileSync(path.join(repoRoot, 'deploy/nginx.conf'), 'utf8')
			.replace('server app1:3000', `server 127.0.0.1:${new URL(nodes[0]?.url as string).port}`)
			.replace('server app2:3000', `server 127.0.0.1:${new URL(nodes[1]?.url as string).port}`)
			.replace('listen 8080 ', `listen 127.0.0.1:${port} `);
		expect(site).not.toMatch(/app[12]:3000|listen 8080/);
		fs.writeFileSync(
			path.join(dir, 'nginx.conf'),
			`daemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\nevents {}\nhttp {\naccess_log off;\n` +
				`client_body_temp_path ${dir}/body;\nproxy_temp_path ${dir}/proxy;\n${site}\n}\n`,
		);
		const check = spawnSync(nginx as string, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')], {
			encoding: 'utf8',
		});
		expect(check.status, check.stderr).toBe(0);
		proxy = spawn(nginx as string, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
		proxyUrl = `http://127.0.0.1:${port}`;
		await waitFor(
			async () => (await fetch(`${proxyUrl}/healthz`).catch(() => null))?.status === 200,
			10_000,
			'nginx to answer',
		);
	});

	afterAll(async () => {
		proxy?.kill('SIGTERM');
		for (const n of nodes) await n.close();
		await drop?.();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it('counts a client by its real address: a forged X-Forwarded-For does not dodge the limits (finding 3)', async () => {
		// Each attempt claims another address and another name; nginx appends the real one (127.0.0.3), and only
		// that entry is believed. Two nodes take 20 sign-ins a minute each from one address.
		const request = (i: number, path: string, headers: Record<string, string>, body?: string) =>
			new Promise<number>((resolve, reject) => {
				const req = http.request(`${proxyUrl}${path}`, {
					method: body === undefined ? 'GET' : 'POST',
					localAddress: '127.0.0.3',
					headers: { ...headers, 'x-forwarded-for': `203.0.113.${i}` },
				});
				req.on('upgrade', (_res, socket) => {
					socket.destroy();
					resolve(101);
				});
				req.on('response', (res) => {
					res.resume();
					resolve(res.statusCode ?? 0);
				});
				req.on('error', reject);
				req.end(body);
			});
		let refused = 0;
		for (let i = 0; i < 60; i++) {
			const status = await request(
				i,
				'/api/auth/login',
				{ 'content-type': 'application/json' },
				JSON.stringify({ name: `nobody${i}`, password: 'not the password' }),
			);
			if (status === 429) refused++;
			else expect(status).toBe(401);
		}
		expect(refused).toBeGreaterThanOrEqual(20);

		// WebSocket upgrades: 30 a minute per address and node.
		const upgrade = (i: number) =>
			request(i, '/collab', {
				connection: 'Upgrade',
				upgrade: 'websocket',
				'sec-websocket-version': '13',
				'sec-websocket-key': Buffer.from(`key-${i}-0123456`).toString('base64'),
			});
		const statuses: number[] = [];
		for (let i = 0; i < 80; i++) statuses.push(await upgrade(i));
		expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(20);
	});

	it('keeps /metrics to Prometheus, which scrapes the nodes directly', async () => {
		expect((await fetch(`${proxyUrl}/metrics`)).status).toBe(404);
		expect((await fetch(`${nodes[0]?.url}/metrics`)).status).toBe(200);
	});

	it('serves the API and passes WebSocket upgrades of /collab through to the nodes', async () => {
		const api = new Api(proxyUrl);
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const room = await api.createGroup(ana.accessToken, [ben.user.id]);
		const ws = `${proxyUrl.replace(/^http/, 'ws')}/collab`;
		const a = connect(ws, room.id, ana.accessToken, ana.user.id);
		const b = connect(ws, room.id, ben.accessToken, ben.user.id);
		try {
			await Promise.all([a.synced(), b.synced()]);
			const sent = a.send('through nginx');
			await a.synced();
			expect(a.acked.has(sent.clientMsgId)).toBe(true);
			const page = await api.get(`/api/rooms/${room.id}/messages`, ben.accessToken);
			expect(page.body.items.map((m: { content: string }) => m.content)).toEqual(['through nginx']);
		} finally {
			a.destroy();
			b.destroy();
		}
	});
	it('takes an attachment bigger than its default body limit, and either node serves it', async () => {
		const api = new Api(proxyUrl);
		const ana = await api.register('ana');
		const room = await api.createGroup(ana.accessToken, []);
		const bytes = randomBytes(3 * 1024 * 1024);
		const id = await new Promise<string>((resolve, reject) => {
			const upload = new Upload(bytes, {
				endpoint: `${proxyUrl}/api/uploads`,
				headers: { authorization: `Bearer ${ana.accessToken}` },
				metadata: { roomId: room.id, filename: 'three.bin', filetype: 'application/octet-stream' },
				onError: reject,
				onSuccess: () => resolve(upload.url?.split('/').pop() ?? ''),
			});
			upload.start();
		});
		// Round robin: two reads reach both nodes.
		for (let i = 0; i < 2; i++) {
			const got = await fetch(`${proxyUrl}/api/files/${id}`, {
				headers: { authorization: `Bearer ${ana.accessToken}` },
			});
			expect(got.status).toBe(200);
			expect(Buffer.from(await got.arrayBuffer()).equals(bytes)).toBe(true);
		}
	});
});

describe('docker-compose.yml', () => {
	const dockerCompose = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
	it.skipIf(dockerCompose.status !== 0)('is a valid compose file (docker compose config)', () => {
		const result = spawnSync('docker', ['compose', 'config', '--quiet'], {
			cwd: repoRoot,
			encoding: 'utf8',
			env: { ...process.env, JWT_SECRET: 'a-secret-for-validating-the-compose-file-only' },
		});
		expect(result.status, result.stderr).toBe(0);
	});

	// Parsed as Compose reads it (YAML 1.2 with merge keys), so a syntax error, a broken anchor or a misspelt
	// variable fails here even where `docker compose config` cannot run.
	const compose = parse(fs.readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8'), {
		merge: true,
	}) as {
		services: Record<string, Service>;
		volumes: Record<string, unknown>;
	};
	interface Service {
		image?: string;
		build?: string;
		profiles?: string[];
		environment?: Record<string, string | number>;
		depends_on?: string[] | Record<string, { condition: string }>;
		volumes?: string[];
		ports?: string[];
	}
	const { services } = compose;

	it('runs two app nodes from this Dockerfile behind the nginx configuration this test runs', () => {
		expect(Object.keys(services)).toEqual(
			expect.arrayContaining(['postgres', 'redis', 'app1', 'app2', 'proxy']),
		);
		for (const name of ['app1', 'app2']) {
			const app = services[name] as Service;
			expect(app.build, name).toBe('.');
			expect(app.depends_on, name).toEqual({
				postgres: { condition: 'service_healthy' },
				redis: { condition: 'service_healthy' },
			});
			// Both nodes on the same database, Redis and signing key, or they would not be one deployment.
			expect(app.environment, name).toMatchObject({
				DATABASE_URL: 'postgres://chat:chat@postgres:5432/chat',
				REDIS_URL: 'redis://redis:6379',
				JWT_SECRET: expect.stringMatching(/^\$\{JWT_SECRET:\?.+\}$/),
				NODE_ENV: 'production',
			});
		}
		const proxy = services.proxy as Service;
		expect(proxy.volumes).toContain('./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro');
		expect(proxy.ports).toEqual(['8080:8080']);
		expect(Object.keys(proxy.depends_on ?? {})).toEqual(['app1', 'app2']);
	});

	it('sets only variables the server reads, and depends only on services it defines', () => {
		const config = fs.readFileSync(path.join(repoRoot, 'server/config.ts'), 'utf8');
		const known = new Set([...config.matchAll(/^\t\t([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]));
		for (const name of ['app1', 'app2'])
			for (const variable of Object.keys(services[name]?.environment ?? {}))
				expect(known.has(variable), `${name} sets ${variable}, which server/config.ts does not read`).toBe(
					true,
				);
		for (const [name, service] of Object.entries(services)) {
			const needs = Array.isArray(service.depends_on)
				? service.depends_on
				: Object.keys(service.depends_on ?? {});
			for (const other of needs) expect(services[other], `${name} depends on ${other}`).toBeDefined();
			for (const volume of service.volumes ?? []) {
				const source = volume.split(':')[0] as string;
				if (source.startsWith('./')) expect(fs.existsSync(path.join(repoRoot, source)), volume).toBe(true);
				else expect(compose.volumes, `${name} mounts the volume ${source}`).toHaveProperty(source);
			}
		}
	});

	it('keeps Prometheus, Grafana and the trace pipeline in the observability profile', () => {
		for (const name of ['prometheus', 'grafana', 'otel-collector', 'jaeger'])
			expect(services[name]?.profiles, name).toEqual(['observability']);
		for (const name of ['postgres', 'redis', 'app1', 'app2', 'proxy'])
			expect(services[name]?.profiles, name).toBeUndefined();
	});
});

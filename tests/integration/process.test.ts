import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, describeEachBackend } from '../helpers/backends.ts';
import { ensureClientBuild } from '../../scripts/build.ts';
import { ensureBuilt } from '../helpers/browser.ts';
import { connect, waitFor, type TestClient } from '../helpers/collab.ts';
import { freePort, repoRoot, spawnServer, type ServerProcess } from '../helpers/process.ts';
import { Api, tmpDir } from '../helpers/server.ts';
import { seedPglite } from '../helpers/pglite-template.ts';

const running: ServerProcess[] = [];
afterAll(() => {
	// A test that failed halfway must not leave servers behind, including a node server under npm.
	for (const s of running) {
		if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
		const pid = s.serverPid();
		if (pid && pid !== s.proc.pid) {
			try {
				process.kill(pid, 'SIGKILL');
			} catch {
				// Already gone.
			}
		}
	}
});
const start = (env: Record<string, string>, command?: string[], cwd?: string) => {
	const s = spawnServer(env, command, cwd);
	running.push(s);
	return s;
};

describe('the server process', () => {
	it('starts with `npm start` on the embedded database, serves the app, keeps data across a restart and refuses a second server on the same DATA_DIR', async () => {
		// The production build is made first, so that this test's time limit is not spent building it in npm start.
		await ensureClientBuild();
		const dataDir = tmpDir('npmstart');
		const first = start({ DATA_DIR: dataDir, PORT: '0' }, ['npm', 'start', '--silent']);
		const url = await first.ready;
		const page = await fetch(url + '/');
		expect(page.status).toBe(200);
		expect(await page.text()).toContain('<html');
		const deepLink = await fetch(url + '/rooms/anything');
		expect(deepLink.status).toBe(200);
		// A missing asset is a 404, never the app's HTML (a service worker would cache it as a script).
		expect((await fetch(url + '/_app/immutable/chunks/missing.js')).status).toBe(404);
		expect((await fetch(url + '/missing.png')).status).toBe(404);
		expect(await (await fetch(url + '/manifest.webmanifest')).text()).toContain('"display"');
		const api = new Api(url);
		const { user } = await api.register('persist');

		const second = start({ DATA_DIR: dataDir, PORT: '0' });
		expect(await second.exited).toBe(1);
		expect(second.output()).toMatch(/DATA_DIR .* is in use by another server \(pid \d+\)/);

		// SIGTERM to npm reaches the server (the start script execs node), which flushes and exits 0.
		const serverPid = first.serverPid();
		first.proc.kill('SIGTERM');
		expect(await first.exited).toBe(0);
		expect(() => process.kill(serverPid, 0)).toThrow();

		const third = start({ DATA_DIR: dataDir, PORT: '0' });
		const api3 = new Api(await third.ready);
		const login = await api3.post('/api/auth/login', {
			name: user.name,
			password: 'a long enough passphrase',
		});
		expect(login.status).toBe(200);
		third.proc.kill('SIGTERM');
		expect(await third.exited).toBe(0);
		fs.rmSync(dataDir, { recursive: true, force: true });
	}, 180_000);

	it('refuses to boot on a bad configuration with one line naming the variable', async () => {
		for (const [env, name] of [
			[{ PORT: 'eighty' }, 'PORT'],
			[{ NODE_ENV: 'production', JWT_SECRET: '' }, 'JWT_SECRET'],
			[{ JWT_SECRET: 'short' }, 'JWT_SECRET'],
			[{ DATABASE_URL: 'mysql://localhost/db' }, 'DATABASE_URL'],
			[{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
		] as const) {
			const s = start({ DATA_DIR: tmpDir('badcfg'), ...env });
			expect(await s.exited).toBe(2);
			expect(s.output()).toMatch(new RegExp(`Invalid ${name}: .+`));
		}
	});

	it('starts two `npm start` at once in one checkout, both serving the same whole build', async () => {
		const built = await ensureClientBuild();
		const [a, b] = [0, 1].map(() =>
			start({ DATA_DIR: tmpDir('twostarts'), PORT: '0' }, ['npm', 'start', '--silent']),
		);
		const urls = await Promise.all([a!.ready, b!.ready]);
		const index = fs.readFileSync(path.join(built, 'index.html'), 'utf8');
		for (const url of urls) {
			expect((await fetch(url + '/healthz')).status).toBe(200);
			expect(await (await fetch(url + '/')).text()).toBe(index);
		}
		// Neither start rebuilt the client: its sources had not changed.
		for (const s of [a!, b!]) expect(s.output()).not.toMatch(/building the client/);
		for (const s of [a!, b!]) s.proc.kill('SIGTERM');
		expect(await Promise.all([a!.exited, b!.exited])).toEqual([0, 0]);
	}, 120_000);

	it('keeps test hooks out of the production build', async () => {
		const mentions = (dir: string) =>
			fs
				.readdirSync(dir, { recursive: true, encoding: 'utf8' })
				.filter(
					(file) =>
						file.endsWith('.js') && fs.readFileSync(path.join(dir, file), 'utf8').includes('__chatDebug'),
				);
		expect(mentions(await ensureClientBuild())).toEqual([]);
		expect(mentions(await ensureBuilt()).length).toBeGreaterThan(0);
	}, 120_000);

	it('reads .env from the working directory, below the environment', async () => {
		const cwd = tmpDir('dotenv');
		const port = await freePort();
		const dataDir = tmpDir('dotenv-data');
		fs.writeFileSync(
			path.join(cwd, '.env'),
			`# a comment\nPORT=${port}\nDATA_DIR=${dataDir}\nLOG_LEVEL=fatal\nCONTENT_FILTER=mask\nCONTENT_FILTER_WORDS=darn,heck\nDOCUMENTS_PER_CONNECTION=7\n`,
		);
		const launcher = [process.execPath, path.join(repoRoot, 'scripts/with-node.mjs')];
		// LOG_LEVEL from the environment wins over the file's (which would hide the line `ready` waits for).
		const s = start({ LOG_LEVEL: 'info' }, [...launcher, path.join(repoRoot, 'server/main.ts')], cwd);
		const url = await s.ready;
		expect(url).toBe(`http://127.0.0.1:${port}`);
		expect(await (await fetch(url + '/api/config')).json()).toMatchObject({
			contentFilter: { mode: 'mask', words: ['darn', 'heck'] },
			limits: expect.objectContaining({ documentsPerConnection: 7, nameMax: 32 }),
		});
		expect(fs.existsSync(path.join(dataDir, 'pglite'))).toBe(true);
		s.proc.kill('SIGTERM');
		expect(await s.exited).toBe(0);

		// A .env that cannot be read stops the start with one line, not a stack trace.
		fs.rmSync(path.join(cwd, '.env'));
		fs.mkdirSync(path.join(cwd, '.env'));
		const bad = start({}, [...launcher, path.join(repoRoot, 'server/main.ts')], cwd);
		expect(await bad.exited).toBe(1);
		expect(bad.output().trim()).toMatch(/^error: .*\.env could not be read: .+$/);
	}, 60_000);

	it('has .env.example document every variable the config reads', () => {
		const example = fs.readFileSync(path.join(repoRoot, '.env.example'), 'utf8');
		const config = fs.readFileSync(path.join(repoRoot, 'server/config.ts'), 'utf8');
		const names = [...config.matchAll(/^\t\t([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]);
		expect(names.length).toBeGreaterThan(10);
		for (const name of names) expect(example, name).toMatch(new RegExp(`^#? ?${name}=`, 'm'));
	});
});

describeEachBackend('crash safety', (backend) => {
	it('keeps every message a client saw acknowledged through a kill -9, exactly once', async () => {
		const dataDir = tmpDir('crash');
		const db = backend === 'postgres' ? await createTestDatabase() : undefined;
		if (!db) await seedPglite(dataDir);
		// The stream below is a load test, far above the default per-user write rate.
		const env = {
			DATA_DIR: dataDir,
			PORT: '0',
			WRITE_UPDATES_PER_10S: '100000',
			...(db ? { DATABASE_URL: db.url } : {}),
		};
		const clients: TestClient[] = [];
		try {
			const server = start(env);
			const url = await server.ready;
			const api = new Api(url);
			const ana = await api.register('ana');
			const ben = await api.register('ben');
			const room = await api.createGroup(ana.accessToken, [ben.user.id]);
			const wsUrl = url.replace(/^http/, 'ws') + '/collab';
			const a = connect(wsUrl, room.id, ana.accessToken, ana.user.id);
			const b = connect(wsUrl, room.id, ben.accessToken, ben.user.id);
			clients.push(a, b);
			await Promise.all([a.synced(), b.synced()]);

			// Both write in a stream; the server is killed while messages are in flight.
			let sending = true;
			const pump = async (c: TestClient, who: string) => {
				for (let i = 0; sending; i++) {
					c.send(`${who} ${i}`);
					await new Promise((r) => setTimeout(r, 2));
				}
			};
			const pumps = [pump(a, 'ana'), pump(b, 'ben')];
			await waitFor(() => a.acked.size + b.acked.size >= 200, 30_000, '200 acknowledged messages');
			server.proc.kill('SIGKILL');
			expect(await server.exited).toBe('SIGKILL');
			sending = false;
			await Promise.all(pumps);
			const acked = new Set([...a.acked, ...b.acked]);
			const sent = a.messages().length + b.messages().length;
			for (const c of clients.splice(0)) c.destroy();

			const restarted = start(env);
			const url2 = await restarted.ready;
			const reader = connect(url2.replace(/^http/, 'ws') + '/collab', room.id, ana.accessToken, ana.user.id);
			clients.push(reader);
			await reader.synced();
			await waitFor(() => reader.messages().length >= acked.size, 15_000, 'history after the crash');
			const inDoc = new Set(reader.messages().map((m) => m.clientMsgId));
			const missingInDoc = [...acked].filter((id) => !inDoc.has(id));

			const exported = await new Api(url2).get(`/api/rooms/${room.id}/export?format=jsonl`, ana.accessToken);
			const rows = (exported.body as string)
				.trim()
				.split('\n')
				.filter(Boolean)
				.map((l) => JSON.parse(l) as { clientMsgId: string });
			const counts = new Map<string, number>();
			for (const r of rows) counts.set(r.clientMsgId, (counts.get(r.clientMsgId) ?? 0) + 1);
			const missingInDb = [...acked].filter((id) => !counts.has(id));
			const duplicated = [...counts].filter(([, n]) => n > 1);
			console.log(
				`[${backend}] kill -9: ${acked.size} acknowledged, ${sent} written locally (both clients' views), ` +
					`${inDoc.size} in the document after restart, ${rows.length} rows in messages`,
			);
			expect(missingInDoc).toEqual([]);
			expect(missingInDb).toEqual([]);
			expect(duplicated).toEqual([]);
			// Every row in the mirror is in the document, and the other way round.
			expect([...counts.keys()].sort()).toEqual([...inDoc].sort());
			restarted.proc.kill('SIGTERM');
			expect(await restarted.exited).toBe(0);
		} finally {
			for (const c of clients) c.destroy();
			await db?.drop();
			fs.rmSync(dataDir, { recursive: true, force: true });
		}
	}, 120_000);
});

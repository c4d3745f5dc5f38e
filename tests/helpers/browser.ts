import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
	chromium,
	type Browser,
	type BrowserContext,
	type BrowserContextOptions,
	type Page,
} from 'playwright-core';
import { inject } from 'vitest';
import { repoRoot, spawnServer, type ServerProcess } from './process.ts';
import { tmpDir } from './server.ts';

/**
 * End-to-end harness: the built client served by the real server in a child process, driven by Debian's Chromium
 * through playwright-core. Without Chromium the browser tests skip loudly, except in CI, where they fail.
 */

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
	'--headless',
	'--no-sandbox',
	'--disable-gpu',
	'--disable-background-networking',
	'--disable-component-update',
	'--disable-sync',
	'--no-first-run',
];

/** Whether the browser tests can run here (`describe.skipIf(!chromiumAvailable)`). */
export const chromiumAvailable = findChromium();

function findChromium(): boolean {
	if (fs.existsSync(CHROMIUM)) return true;
	const message = `Chromium is not installed at ${CHROMIUM}`;
	if (process.env.CI) throw new Error(`${message}. CI needs it: the browser tests cannot be skipped there.`);
	console.warn(
		`\n!!! ${message}\n!!! SKIPPING every browser (e2e) test. Install it with \`apt-get install chromium\`.\n`,
	);
	return false;
}

// ---------------------------------------------------------------------------------------------------------------
// The client build

const BUILD_DIR = path.join(repoRoot, 'build');
const BUILD_INPUTS = ['src', 'static', 'svelte.config.js', 'vite.config.ts'];
const CACHE_DIR = path.join(repoRoot, 'node_modules', '.cache', 'chat-e2e');
const LOCK_DIR = path.join(CACHE_DIR, 'build.lock');
/** The fingerprint of the last build made here (see `isStale`). */
const STAMP_FILE = path.join(CACHE_DIR, 'build.stamp');
const LOCK_TIMEOUT_MS = 5 * 60_000;
/** Snapshots of earlier runs older than this are removed. */
const SNAPSHOT_MAX_AGE_MS = 24 * 60 * 60_000;

/**
 * Makes sure the client is built and returns this run's read-only snapshot of it, to serve as STATIC_DIR.
 *
 * `vite build` runs at most once per `vitest run` (keyed on the run id from global-setup, or on one a script
 * passes; under a lock shared by the workers), and only when build/ is missing, older than a file under src/,
 * static/ or the two configs, or not built by this helper. The tests serve a copy rather than build/ itself:
 * `npm start` (tests/integration/process.test.ts) rebuilds build/ in place while other workers run, and a page
 * must not see its files vanish halfway through a test.
 */
export async function ensureBuilt(runId: string = inject('runId')): Promise<string> {
	const snapshot = path.join(CACHE_DIR, `build-${runId}`);
	const complete = path.join(snapshot, '.complete');
	if (fs.existsSync(complete)) return snapshot;
	return withLock(async () => {
		if (fs.existsSync(complete)) return snapshot;
		pruneSnapshots();
		if (isStale()) await viteBuild();
		let problem = takeSnapshot(snapshot);
		if (problem) {
			// Another `vite build` (npm start's prestart) may have been writing build/ at the same moment.
			await viteBuild();
			problem = takeSnapshot(snapshot);
			if (problem) throw new Error(`the client build is incomplete: ${problem}`);
		}
		fs.writeFileSync(complete, '');
		return snapshot;
	});
}

/** A fresh writable copy of a built client (for a test that "deploys" a changed version into it). */
export function copyBuild(from: string): string {
	const dir = tmpDir('client');
	fs.cpSync(from, dir, { recursive: true });
	return dir;
}

function newestMtime(file: string): number {
	const stat = fs.statSync(file, { throwIfNoEntry: false });
	if (!stat) return 0;
	if (!stat.isDirectory()) return stat.mtimeMs;
	let newest = stat.mtimeMs;
	for (const entry of fs.readdirSync(file)) newest = Math.max(newest, newestMtime(path.join(file, entry)));
	return newest;
}

/** A fingerprint of a built client: its service worker names every file of it, with revisions. */
function buildStamp(dir = BUILD_DIR): string | undefined {
	const sw = path.join(dir, 'sw.js');
	const index = path.join(dir, 'index.html');
	if (!fs.existsSync(sw) || !fs.existsSync(index)) return undefined;
	return createHash('sha256').update(fs.readFileSync(sw)).update(fs.readFileSync(index)).digest('hex');
}

/**
 * Whether build/ must be built again: missing, older than its sources, or not built by `viteBuild` here. Another
 * build (`npm start` under NODE_ENV=test, a developer's) may be a development build of Svelte.
 */
function isStale(): boolean {
	const stamp = buildStamp();
	if (!stamp || fs.readFileSync(STAMP_FILE, { encoding: 'utf8', flag: 'a+' }) !== stamp) return true;
	const built = fs.statSync(path.join(BUILD_DIR, 'sw.js')).mtimeMs;
	return Math.max(...BUILD_INPUTS.map((input) => newestMtime(path.join(repoRoot, input)))) > built;
}

async function viteBuild(): Promise<void> {
	const vite = path.join(repoRoot, 'node_modules', 'vite', 'bin', 'vite.js');
	// Vitest sets NODE_ENV=test, which would make Vite and Svelte build for development.
	const env = { ...process.env, NODE_ENV: 'production' };
	const proc = spawn(process.execPath, [vite, 'build'], {
		cwd: repoRoot,
		env,
		stdio: ['ignore', 'pipe', 'pipe'],
	});
	let output = '';
	proc.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
	proc.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
	const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
	if (code !== 0) throw new Error(`vite build failed (exit ${code}):\n${output.slice(-4000)}`);
	fs.writeFileSync(STAMP_FILE, buildStamp() ?? '');
}

/** Copies build/ to `snapshot` and checks that every file the service worker precaches is in it. */
function takeSnapshot(snapshot: string): string | undefined {
	fs.rmSync(snapshot, { recursive: true, force: true });
	fs.cpSync(BUILD_DIR, snapshot, { recursive: true });
	const sw = path.join(snapshot, 'sw.js');
	if (!fs.existsSync(sw)) return 'build/sw.js is missing';
	const urls = [...fs.readFileSync(sw, 'utf8').matchAll(/"?url"?:\s*"([^"]+)"/g)].map((m) => m[1] as string);
	if (!urls.includes('index.html'))
		return "sw.js does not precache index.html (SvelteKitPWA needs `kit: { adapterFallback: 'index.html', spa: true }`)";
	if (buildStamp(snapshot) !== fs.readFileSync(STAMP_FILE, 'utf8'))
		return 'build/ was rebuilt by someone else';
	const missing = urls.filter((url) => !fs.existsSync(path.join(snapshot, url)));
	return missing.length ? `sw.js precaches files that are not in build/: ${missing.join(', ')}` : undefined;
}

function pruneSnapshots(): void {
	for (const entry of fs.readdirSync(CACHE_DIR)) {
		const dir = path.join(CACHE_DIR, entry);
		if (entry.startsWith('build-') && Date.now() - fs.statSync(dir).mtimeMs > SNAPSHOT_MAX_AGE_MS)
			fs.rmSync(dir, { recursive: true, force: true });
	}
}

/** Runs `fn` holding a lock directory shared by every worker and every concurrent run on this checkout. */
async function withLock<T>(fn: () => Promise<T>): Promise<T> {
	fs.mkdirSync(CACHE_DIR, { recursive: true });
	const owner = path.join(LOCK_DIR, 'pid');
	const deadline = Date.now() + LOCK_TIMEOUT_MS;
	for (;;) {
		try {
			fs.mkdirSync(LOCK_DIR);
			fs.writeFileSync(owner, String(process.pid));
			break;
		} catch (error) {
			if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
		}
		const pid = lockOwner(owner);
		if (pid === null || (pid !== undefined && !isAlive(pid))) {
			// The owner died holding the lock (a killed run): take it over.
			fs.rmSync(LOCK_DIR, { recursive: true, force: true });
			continue;
		}
		if (Date.now() > deadline) throw new Error(`timed out waiting for ${LOCK_DIR} (held by pid ${pid})`);
		await new Promise((resolve) => setTimeout(resolve, 200));
	}
	try {
		return await fn();
	} finally {
		fs.rmSync(LOCK_DIR, { recursive: true, force: true });
	}
}

/** The pid holding the lock; undefined while it is being taken; null when its owner died before writing it. */
function lockOwner(file: string): number | null | undefined {
	try {
		return Number(fs.readFileSync(file, 'utf8')) || undefined;
	} catch {
		const lock = fs.statSync(LOCK_DIR, { throwIfNoEntry: false });
		return lock && Date.now() - lock.mtimeMs > 10_000 ? null : undefined;
	}
}

function isAlive(pid: number): boolean {
	try {
		process.kill(pid, 0);
		return true;
	} catch {
		return false;
	}
}

// ---------------------------------------------------------------------------------------------------------------
// The server

export interface AppServer {
	/** The server's base URL, e.g. http://127.0.0.1:41234. */
	url: string;
	/** Stops the server (SIGTERM, then SIGKILL after 15 s) and removes its data. Idempotent. */
	stop(): Promise<void>;
}

const running = new Set<ServerProcess>();
// A worker that dies mid-test must not leave servers behind.
process.once('exit', () => {
	for (const server of running) server.proc.kill('SIGKILL');
});

/** Starts the real server (server/main.ts) on port 0 with a fresh PGlite DATA_DIR, serving `staticDir`. */
export async function startAppServer(
	staticDir: string,
	env: Record<string, string> = {},
): Promise<AppServer> {
	const dataDir = tmpDir('e2e-data');
	const server = spawnServer({ PORT: '0', DATA_DIR: dataDir, STATIC_DIR: staticDir, ...env });
	running.add(server);
	let stopping: Promise<void> | undefined;
	const stop = () =>
		(stopping ??= (async () => {
			if (server.proc.exitCode === null && server.proc.signalCode === null) {
				server.proc.kill('SIGTERM');
				const timer = setTimeout(() => server.proc.kill('SIGKILL'), 15_000);
				await server.exited;
				clearTimeout(timer);
			}
			running.delete(server);
			fs.rmSync(dataDir, { recursive: true, force: true });
		})());
	try {
		return { url: await server.ready, stop };
	} catch (error) {
		await stop();
		throw error;
	}
}

// ---------------------------------------------------------------------------------------------------------------
// The browser

/** A browser context whose pages' console errors and uncaught exceptions are collected. */
export class BrowserSession {
	readonly context: BrowserContext;
	readonly #errors = new WeakMap<Page, string[]>();
	readonly #close: () => Promise<void>;

	constructor(context: BrowserContext, close: () => Promise<void>) {
		this.context = context;
		this.#close = close;
		for (const page of context.pages()) this.#watch(page);
		context.on('page', (page) => this.#watch(page));
	}

	/** The context's first page (a persistent context opens with one), or a new one. */
	async page(): Promise<Page> {
		return this.context.pages()[0] ?? (await this.context.newPage());
	}

	/** Console errors and uncaught exceptions of `page` so far, oldest first. */
	errors(page: Page): string[] {
		return [...(this.#errors.get(page) ?? [])];
	}

	async close(): Promise<void> {
		await this.#close();
	}

	/**
	 * A session over `context` whose pages also report every Content-Security-Policy violation as a console error
	 * (`CSP violation: …`): every test that expects no console errors expects no violation of the shipped policy.
	 */
	static async open(context: BrowserContext, close: () => Promise<void>): Promise<BrowserSession> {
		await context.addInitScript(() => {
			document.addEventListener('securitypolicyviolation', (event) =>
				console.error(
					`CSP violation: ${event.violatedDirective} ${event.blockedURI} at ${event.sourceFile}:${event.lineNumber}`,
				),
			);
		});
		return new BrowserSession(context, close);
	}

	#watch(page: Page): void {
		if (this.#errors.has(page)) return;
		const errors: string[] = [];
		this.#errors.set(page, errors);
		page.on('console', (message) => {
			if (message.type() === 'error') errors.push(`console: ${message.text()} (${message.location().url})`);
		});
		page.on('pageerror', (error) => errors.push(`uncaught: ${error.stack ?? error.message}`));
	}
}

/** Launches Chromium and opens an incognito context (`browser.newContext()`). */
export async function openBrowser(options: BrowserContextOptions = {}): Promise<BrowserSession> {
	const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
	try {
		const context = await browser.newContext(options);
		return await BrowserSession.open(context, () => browser.close());
	} catch (error) {
		await browser.close();
		throw error;
	}
}

/** One Chromium shared by several users: each `newSession()` is an incognito context with its own storage. */
export interface SharedBrowser {
	newSession(options?: BrowserContextOptions): Promise<BrowserSession>;
	/** Closes every context and the browser. */
	close(): Promise<void>;
}

/** Launches Chromium once, for tests that need several independent users (Ana and Ben) side by side. */
export async function launchBrowser(): Promise<SharedBrowser> {
	const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
	return {
		async newSession(options: BrowserContextOptions = {}) {
			const context = await browser.newContext(options);
			return BrowserSession.open(context, () => context.close());
		},
		close: () => browser.close(),
	};
}

/**
 * Launches Chromium on a fresh profile directory (`launchPersistentContext`). Installability checks need this:
 * Chromium reports an incognito context's app as not installable.
 */
export async function openPersistentBrowser(options: BrowserContextOptions = {}): Promise<BrowserSession> {
	const userDataDir = tmpDir('chromium-profile');
	const context = await chromium.launchPersistentContext(userDataDir, {
		executablePath: CHROMIUM,
		args: CHROMIUM_ARGS,
		...options,
	});
	return BrowserSession.open(context, async () => {
		await context.close();
		fs.rmSync(userDataDir, { recursive: true, force: true });
	});
}

/**
 * Waits until the SvelteKit app has started in `page`: the fallback page's body holds only the boot script until
 * then, and Chromium's own error pages have no such element at all.
 */
export async function waitForApp(page: Page, timeout = 15_000): Promise<void> {
	await page.waitForFunction(
		() => {
			const root = document.querySelector('body > div[style*="contents"]');
			return !!root && [...root.children].some((child) => child.tagName !== 'SCRIPT');
		},
		undefined,
		{ timeout },
	);
}

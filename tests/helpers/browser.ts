import fs from 'node:fs';
import {
	chromium,
	type Browser,
	type BrowserContext,
	type BrowserContextOptions,
	type Page,
} from 'playwright-core';
import { ensureClientBuild } from '../../scripts/build.ts';
import { spawnServer, type ServerProcess } from './process.ts';
import { seedPglite } from './pglite-template.ts';
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

/**
 * The client built from the current sources for the browser tests (scripts/build.ts: built once per change of the
 * sources, under a lock shared with every other build in this checkout, in a folder that never changes). It is
 * the production build plus the room documents exposed to the page (`__TEST_HOOKS__`).
 */
export async function ensureBuilt(): Promise<string> {
	return ensureClientBuild({ testHooks: true });
}

/** A fresh writable copy of a built client (for a test that "deploys" a changed version into it). */
export function copyBuild(from: string): string {
	const dir = tmpDir('client');
	fs.cpSync(from, dir, { recursive: true });
	return dir;
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
	if (!env.DATABASE_URL) await seedPglite(dataDir);
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

/** Signs `name` in through the app's form at `url`/login, and waits for the room list. */
export async function signInThroughForm(
	page: Page,
	url: string,
	name: string,
	password: string,
): Promise<void> {
	await page.goto(`${url}/login`);
	await waitForApp(page);
	await page.getByLabel('Name').fill(name);
	await page.getByLabel('Password').fill(password);
	await page.getByRole('button', { name: 'Sign in' }).last().click();
	await page.getByTestId('start-chat').waitFor({ timeout: 15_000 });
}

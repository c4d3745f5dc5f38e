import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
	chromiumAvailable,
	copyBuild,
	ensureBuilt,
	openBrowser,
	openPersistentBrowser,
	startAppServer,
	waitForApp,
	type AppServer,
	type BrowserSession,
} from '../helpers/browser.ts';

let client: string;
const cleanups: (() => Promise<void>)[] = [];

async function serve(staticDir: string): Promise<AppServer> {
	const server = await startAppServer(staticDir);
	cleanups.push(server.stop);
	return server;
}

async function track(session: Promise<BrowserSession>): Promise<BrowserSession> {
	const opened = await session;
	cleanups.push(() => opened.close());
	return opened;
}

/** Waits until the page's service worker is active (the root layout registers it through `registerPwa()`). */
async function workerActive(page: Page): Promise<void> {
	try {
		await page.waitForFunction(
			async () => (await navigator.serviceWorker.getRegistration())?.active?.state === 'activated',
			undefined,
			{ timeout: 15_000 },
		);
	} catch (error) {
		throw new Error('no service worker became active: does the root layout call registerPwa()?', {
			cause: error,
		});
	}
}

/** Loads `url` once so the service worker installs, then reloads until it controls the page. */
async function installWorker(page: Page, url: string): Promise<void> {
	await page.goto(url);
	await waitForApp(page);
	await workerActive(page);
	// Chromium may still load a page from the network for a moment after the worker reports itself activated.
	for (let attempt = 1; ; attempt++) {
		await page.reload();
		await waitForApp(page);
		if (await controller(page)) return;
		if (attempt === 20) throw new Error('the active service worker never took control of a reloaded page');
		await new Promise((resolve) => setTimeout(resolve, 250));
	}
}

const controller = (page: Page) => page.evaluate(() => navigator.serviceWorker.controller?.scriptURL ?? null);

describe.skipIf(!chromiumAvailable)('the app as a PWA', () => {
	beforeAll(async () => {
		client = await ensureBuilt();
	}, 180_000);

	afterEach(async () => {
		while (cleanups.length) await cleanups.pop()?.();
	});

	it('is installable: Chromium finds no installability or manifest errors, and the manifest has its icons', async () => {
		const server = await serve(client);
		const session = await track(openPersistentBrowser());
		const page = await session.page();
		await page.goto(`${server.url}/`);
		await waitForApp(page);
		await workerActive(page);

		const cdp = await session.context.newCDPSession(page);
		const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
		expect(installabilityErrors).toEqual([]);
		const manifest = await cdp.send('Page.getAppManifest');
		expect(manifest.url).toBe(`${server.url}/manifest.webmanifest`);
		expect(manifest.errors).toEqual([]);
		const data = JSON.parse(manifest.data ?? '{}');
		expect(data).toMatchObject({ id: '/', start_url: '/', scope: '/', display: 'standalone' });
		expect(data.icons).toEqual(
			expect.arrayContaining([
				expect.objectContaining({ sizes: '192x192', type: 'image/png' }),
				expect.objectContaining({ sizes: '512x512', type: 'image/png', purpose: 'any' }),
				expect.objectContaining({ sizes: '512x512', type: 'image/png', purpose: 'maskable' }),
			]),
		);
		expect(session.errors(page)).toEqual([]);
	});

	it('serves the app shell from its cache once the server is gone, at / and at a deep link', async () => {
		const server = await serve(client);
		const session = await track(openBrowser());
		const page = await session.page();
		await installWorker(page, `${server.url}/`);
		expect(await controller(page)).toBe(`${server.url}/sw.js`);
		expect(session.errors(page)).toEqual([]);

		// Really unreachable, not only emulated: a request the worker does not answer itself fails.
		await server.stop();
		await session.context.setOffline(true);

		const home = await page.reload();
		expect(home?.fromServiceWorker()).toBe(true);
		expect(home?.status()).toBe(200);
		await waitForApp(page);

		const deepLink = await page.goto(`${server.url}/rooms/${randomUUID()}`);
		expect(deepLink?.fromServiceWorker()).toBe(true);
		expect(deepLink?.status()).toBe(200);
		await waitForApp(page);
		expect(await controller(page)).toBe(`${server.url}/sw.js`);

		// Failed requests to the server are expected offline; a crash of the app is not.
		expect(session.errors(page).filter((error) => error.startsWith('uncaught:'))).toEqual([]);
	});

	it('offers a newly deployed version only when there is one, and switches to it on Reload', async () => {
		const served = copyBuild(client);
		cleanups.push(async () => fs.rmSync(served, { recursive: true, force: true }));
		const server = await serve(served);
		const session = await track(openBrowser());
		const page = await session.page();
		const updateBar = page.getByText(/update available/i);

		await installWorker(page, `${server.url}/`);
		expect(await updateBar.count()).toBe(0);

		deploy(served, 'v2');
		// What the app's periodic check (and every navigation) does: ask the server for sw.js again.
		await page.evaluate(async () => {
			await (await navigator.serviceWorker.getRegistration())?.update();
		});
		await updateBar.waitFor({ timeout: 15_000 });

		await page.getByRole('button', { name: /reload/i }).click();
		await page
			.locator('meta[name="chat-build"][content="v2"]')
			.waitFor({ state: 'attached', timeout: 15_000 });
		await waitForApp(page);
		expect(await updateBar.count()).toBe(0);
		expect(await controller(page)).toBe(`${server.url}/sw.js`);
		expect(session.errors(page)).toEqual([]);
	});
});

/**
 * Deploys a new version of the client into `dir` the way a real deploy changes it for the service worker: a new
 * app shell, and a sw.js whose precache manifest carries the new shell's revision. (A second `vite build` would do
 * the same with new chunk names too, at the cost of a second build and a server restart to serve new files.)
 */
function deploy(dir: string, version: string): void {
	const indexHtml = path.join(dir, 'index.html');
	const html = fs.readFileSync(indexHtml, 'utf8');
	fs.writeFileSync(indexHtml, html.replace('<head>', `<head><meta name="chat-build" content="${version}">`));
	const swJs = path.join(dir, 'sw.js');
	const sw = fs.readFileSync(swJs, 'utf8');
	const updated = sw.replace(
		/\{url:"index\.html",revision:"[^"]*"\}/,
		`{url:"index.html",revision:"${version}"}`,
	);
	if (updated === sw) throw new Error('sw.js does not precache index.html with a revision');
	fs.writeFileSync(swJs, updated);
}

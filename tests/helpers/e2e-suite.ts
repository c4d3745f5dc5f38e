import type { BrowserContextOptions } from 'playwright-core';
import { afterAll, afterEach, beforeAll } from 'vitest';
import {
	chromiumAvailable,
	ensureBuilt,
	launchBrowser,
	startAppServer,
	type AppServer,
	type BrowserSession,
	type SharedBrowser,
} from './browser.ts';

/**
 * The common shape of a browser test file: one app server on the current client build and one Chromium for the
 * whole file, each test's browser contexts closed after it. Without Chromium it starts nothing (the file's
 * `describe.skipIf(!chromiumAvailable)` reports the skip), so it may be called at the top of a file.
 */
export function appAndBrowser(env: Record<string, string> = {}): {
	/** The server's base URL (once the file's tests run). */
	url(): string;
	/** A fresh incognito context (its own storage), closed after the test. */
	session(options?: BrowserContextOptions): Promise<BrowserSession>;
} {
	let server: AppServer | undefined;
	let browser: SharedBrowser | undefined;
	const sessions: BrowserSession[] = [];

	if (chromiumAvailable) registerHooks();
	function registerHooks() {
		beforeAll(async () => {
			server = await startAppServer(await ensureBuilt(), env);
			browser = await launchBrowser();
		}, 180_000);

		afterEach(async () => {
			while (sessions.length) await sessions.pop()?.close();
		});

		afterAll(async () => {
			await browser?.close();
			await server?.stop();
		});
	}

	return {
		url: () => server!.url,
		async session(options?: BrowserContextOptions) {
			const session = await browser!.newSession(options);
			sessions.push(session);
			return session;
		},
	};
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
	chromiumAvailable,
	ensureBuilt,
	launchBrowser,
	signInThroughForm,
	startAppServer,
	waitForApp,
	type AppServer,
	type SharedBrowser,
} from '../helpers/browser.ts';
import { connect, waitFor, writeMany, type TestClient } from '../helpers/collab.ts';
import { Api } from '../helpers/server.ts';

/**
 * A room far longer than its live window (issue 6, check 5): the document keeps the newest 100 messages, and
 * the browser pages the rest in from the server as the reader scrolls back, 5,000 messages in all.
 */
const WINDOW = 100;
const TOTAL = 5_000;

describe.skipIf(!chromiumAvailable)('scrolling back through a long history', () => {
	let server: AppServer;
	let browser: SharedBrowser;
	const clients: TestClient[] = [];

	beforeAll(async () => {
		const client = await ensureBuilt();
		server = await startAppServer(client, {
			ROOM_WINDOW_MESSAGES: String(WINDOW),
			WRITE_UPDATES_PER_10S: '100000',
			WRITE_MESSAGES_PER_10S: '100000',
		});
		browser = await launchBrowser();
	}, 180_000);

	afterAll(async () => {
		for (const c of clients) c.destroy();
		await browser?.close();
		await server?.stop();
	});

	it(`shows all ${TOTAL.toLocaleString('en')} messages once each, in order, across page boundaries`, async () => {
		const api = new Api(server.url);
		const ana = await api.register('ana');
		const ben = await api.register('ben');
		const room = await api.createGroup(ben.accessToken, [ana.user.id], 'Long history');
		const wsUrl = `${server.url.replace(/^http/, 'ws')}/collab`;
		const writer = connect(wsUrl, room.id, ben.accessToken, ben.user.id);
		clients.push(writer);
		await writer.synced();
		const sent = await writeMany(writer, TOTAL, 'history');
		// The server trims the room to its window on its next store (debounced, within about 10 s).
		await waitFor(
			async () => {
				const probe = connect(wsUrl, room.id, ben.accessToken, ben.user.id);
				try {
					await probe.synced();
					return probe.messages().length <= WINDOW * 1.5;
				} finally {
					probe.destroy();
				}
			},
			30_000,
			'the room to be trimmed to its window',
		);
		const expected = sent.map((m) => m.content);

		const session = await browser.newSession();
		try {
			const page = await session.page();
			await signInThroughForm(page, server.url, ana.user.name, 'a long enough passphrase');
			await page.goto(`${server.url}/rooms/${room.id}`);
			await waitForApp(page);
			await page.getByTestId('composer').waitFor({ timeout: 15_000 });
			const contents = () => page.getByTestId('message-content').allTextContents();
			// The newest messages come first, from the live window.
			await expect.poll(async () => (await contents()).at(-1), { timeout: 15_000 }).toBe(expected.at(-1));
			const start = page.getByTestId('history-start');
			const older = page.getByTestId('show-older');
			const deadline = Date.now() + 150_000;
			while (!(await start.isVisible()) && Date.now() < deadline) {
				if (await older.isEnabled().catch(() => false)) await older.click().catch(() => undefined);
				else await page.waitForTimeout(50);
			}
			const shown = await contents();
			console.log(`history: ${shown.length} messages shown after scrolling back (window ${WINDOW})`);
			expect(new Set(shown).size).toBe(shown.length);
			expect(shown).toEqual(expected);
			expect(session.errors(page)).toEqual([]);

			// Offline, after a reload: the history this device paged in is still there, read from IndexedDB.
			await page.waitForFunction(
				async () => (await navigator.serviceWorker.getRegistration())?.active?.state === 'activated',
				undefined,
				{ timeout: 15_000 },
			);
			await session.context.setOffline(true);
			await page.reload();
			await waitForApp(page);
			await expect.poll(async () => (await contents()).at(-1), { timeout: 15_000 }).toBe(expected.at(-1));
			// The paged-in history is read back from IndexedDB after the live window shows (5,000 rows take a
			// moment on a busy machine): keep showing earlier messages until all of them are there.
			await expect
				.poll(
					async () => {
						if ((await older.count()) > 0) await older.click().catch(() => undefined);
						return (await contents()).length;
					},
					{ timeout: 120_000 },
				)
				.toBe(expected.length);
			expect(await contents()).toEqual(expected);
		} finally {
			await session.close();
		}
	}, 300_000);
});

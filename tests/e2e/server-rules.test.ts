import { describe, expect, it } from 'vitest';
import { OLDEST_CLIENT_PROTOCOL, PROTOCOL_VERSION } from '../../src/lib/protocol/version.ts';
import { chromiumAvailable, waitForApp } from '../helpers/browser.ts';
import { appAndBrowser } from '../helpers/e2e-suite.ts';
import { PASSWORD, UI_TIMEOUT, api, signUp } from '../helpers/live-ui.ts';

/**
 * The rules a server sets for its clients, as a browser meets them: the content filter of `GET /api/config`,
 * applied on the device before it writes, and the protocol version, which tells an old app to reload.
 */

const app = appAndBrowser({ CONTENT_FILTER: 'mask', CONTENT_FILTER_WORDS: 'heck,darn' });
const newSession = app.session;

describe.skipIf(!chromiumAvailable)('rules the server sets for its clients', () => {
	it('masks a listed word on the device before sending: it arrives masked, with no refusal and no rebuild', async () => {
		const [ana, ben] = [
			await signUp(await newSession(), app.url(), 'ana'),
			await signUp(await newSession(), app.url(), 'ben'),
		];
		const created = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		expect(created.status).toBe(201);
		const roomId = (created.body as { id: string }).id;
		const warnings: string[] = [];
		ana.page.on('console', (message) => warnings.push(message.text()));
		for (const user of [ana, ben]) {
			await user.page.goto(`${app.url()}/rooms/${roomId}`);
			await waitForApp(user.page);
		}

		const composer = ana.page.getByTestId('composer');
		await composer.fill('what the heck, Darn it');
		await composer.press('Enter');

		const masked = 'what the ****, **** it';
		const own = ana.page.locator('[data-testid="message"][data-own="true"]');
		await own.filter({ hasText: masked }).waitFor({ timeout: UI_TIMEOUT });
		await expect
			.poll(() => own.evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-status'))), {
				timeout: UI_TIMEOUT,
			})
			.toEqual(['synced']);
		await ben.page
			.getByTestId('message-content')
			.getByText(masked, { exact: true })
			.waitFor({ timeout: UI_TIMEOUT });
		expect(await ana.page.getByTestId('message-content').allTextContents()).toEqual([masked]);

		// What the server stored is the masked text, and it refused nothing.
		const history = await api(ana, 'GET', `/api/rooms/${roomId}/messages`);
		const rows = (history.body as { items: { content: string }[] }).items;
		expect(rows.map((r) => r.content)).toEqual([masked]);
		expect(warnings.filter((w) => /refused|rebuild/i.test(w))).toEqual([]);
		expect(ana.session.errors(ana.page)).toEqual([]);
	});

	it('tells an app older than the server accepts to reload, with a clear message', async () => {
		const session = await newSession();
		// The app of the past: it says an older protocol version when it connects.
		await session.context.addInitScript(
			([from, to]) => {
				const Native = window.WebSocket;
				window.WebSocket = class extends Native {
					constructor(url: string | URL, protocols?: string | string[]) {
						super(String(url).replace(`protocol=${from}`, `protocol=${to}`), protocols);
					}
				};
			},
			[PROTOCOL_VERSION, OLDEST_CLIENT_PROTOCOL - 1],
		);
		const name = `old-${Date.now().toString(36)}`;
		const registered = await fetch(`${app.url()}/api/auth/register`, {
			method: 'POST',
			headers: { 'content-type': 'application/json' },
			body: JSON.stringify({ name, password: PASSWORD }),
		});
		expect(registered.status).toBe(201);
		const page = await session.page();
		await page.goto(`${app.url()}/login`);
		await waitForApp(page);
		await page.getByLabel('Name').fill(name);
		await page.getByLabel('Password').fill(PASSWORD);
		await page.getByRole('button', { name: 'Sign in' }).last().click();

		const bar = page.getByTestId('update-bar');
		await bar.waitFor({ timeout: UI_TIMEOUT });
		expect(await bar.textContent()).toContain('This version of Chat is too old for the server');
		await bar.getByRole('button', { name: 'Reload' }).waitFor();
	});

	it('tells an app that the server speaks a newer protocol (GET /api/config) to reload', async () => {
		const session = await newSession();
		await session.context.route('**/api/config', async (route) => {
			const response = await route.fetch();
			const body = (await response.json()) as Record<string, unknown>;
			await route.fulfill({ response, json: { ...body, protocolVersion: PROTOCOL_VERSION + 1 } });
		});
		const page = await session.page();
		await page.goto(`${app.url()}/login`);
		await waitForApp(page);
		const bar = page.getByTestId('update-bar');
		await bar.waitFor({ timeout: UI_TIMEOUT });
		expect(await bar.textContent()).toContain('A newer version of Chat is available');
	});
});

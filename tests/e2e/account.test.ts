import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { chromiumAvailable, waitForApp } from '../helpers/browser.ts';
import { appAndBrowser } from '../helpers/e2e-suite.ts';
import { api, PASSWORD, signIn, signUp, UI_TIMEOUT } from '../helpers/live-ui.ts';

/**
 * The account page in the browser (issue 20, check 4): where you are signed in and signing the others out, your
 * data as a file, and password rules that are the server's, checked as you type. Changing the password and
 * deleting the account are in tests/e2e/live.test.ts (on two nodes); the HTTP rules in
 * tests/integration/account.test.ts.
 */

const app = appAndBrowser();

async function openAccount(page: Page): Promise<void> {
	await page.goto(`${app.url()}/account`);
	await waitForApp(page);
	await page.getByTestId('sessions').waitFor();
}

describe.skipIf(!chromiumAvailable)('the account page', () => {
	it('lists where you are signed in and signs the other devices out', async () => {
		const ana = await signUp(await app.session(), app.url(), 'ana');
		const phoneSession = await app.session();
		const phone = { ...ana, session: phoneSession, page: await phoneSession.page() };
		await signIn(phone);

		await openAccount(ana.page);
		const sessions = ana.page.getByTestId('session');
		// The API registration (Node's fetch), and two sign-ins through the form in Chromium.
		await expect.poll(() => sessions.count(), { timeout: UI_TIMEOUT }).toBe(3);
		const current = ana.page.locator('[data-testid="session"][data-current="true"]');
		expect(await current.textContent()).toContain('Chrome on Linux');
		expect(await current.textContent()).toContain('this device');

		await ana.page.getByTestId('sign-out-others').click();
		await expect.poll(() => sessions.count(), { timeout: UI_TIMEOUT }).toBe(1);
		await phone.page.waitForURL(`${app.url()}/login`, { timeout: UI_TIMEOUT });
		expect(await phone.page.getByTestId('signed-out-reason').textContent()).toBeTruthy();
		expect((await api(ana, 'GET', '/api/me')).status).toBe(401); // the API registration's session ended too
		expect(await ana.page.getByTestId('current-user').textContent()).toBe(ana.name);
		expect(ana.session.errors(ana.page)).toEqual([]);
	});

	it('downloads every message you wrote as a file, with progress, matching the server', async () => {
		const ana = await signUp(await app.session(), app.url(), 'ana');
		const ben = await signUp(await app.session(), app.url(), 'ben');
		const room = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		await ana.page.goto(`${app.url()}/rooms/${room.body.id}`);
		await waitForApp(ana.page);
		const composer = ana.page.getByTestId('composer');
		for (const text of ['first of mine', 'second of mine', 'third **of** mine']) {
			await composer.fill(text);
			await composer.press('Enter');
		}
		await expect
			.poll(() => ana.page.locator('[data-testid="message"][data-status="synced"]').count(), {
				timeout: UI_TIMEOUT,
			})
			.toBe(3);
		const history = await api(ana, 'GET', `/api/rooms/${room.body.id}/messages`);
		const written = history.body.items.filter((m: { senderId: string }) => m.senderId === ana.id);

		await openAccount(ana.page);
		const saved = ana.page.waitForEvent('download');
		await ana.page.getByTestId('download-my-data').click();
		const file = await saved;
		expect(file.suggestedFilename()).toBe(`chat-${ana.name}-data.jsonl`);
		const text = await new Response((await file.createReadStream()) as unknown as ReadableStream).text();
		const lines = text
			.trimEnd()
			.split('\n')
			.map((line) => JSON.parse(line) as Record<string, any>);
		expect(lines[0]).toMatchObject({ type: 'account', id: ana.id, rooms: 1, events: written.length });
		const events = lines.filter((l) => l.type === 'event');
		expect(events.map((e) => e.content).sort()).toEqual(
			written.map((m: { content: string }) => m.content).sort(),
		);
		expect(await ana.page.getByTestId('my-data-done').textContent()).toContain(
			'3 messages and changes in 1 room',
		);
		expect(ana.session.errors(ana.page)).toEqual([]);
	});

	it('shows the password rules the server applies, ticked as you type, and one error per problem', async () => {
		const session = await app.session();
		const page = await session.page();
		await page.goto(`${app.url()}/register`);
		await waitForApp(page);
		const name = `carla${Date.now().toString(36)}`;
		await page.getByLabel('Name').fill(name);
		const password = page.getByLabel('Password', { exact: true });
		const rule = (id: string) => page.locator(`[data-testid="password-rules"] [data-rule="${id}"]`);
		const submit = page.getByRole('button', { name: 'Create an account' });

		await password.fill('short');
		expect(await rule('length').getAttribute('data-ok')).toBe('false');
		expect(await submit.isDisabled()).toBe(true);
		await password.fill(`my ${name} pass`);
		expect(await rule('length').getAttribute('data-ok')).toBe('true');
		expect(await rule('name').getAttribute('data-ok')).toBe('false');
		expect(await submit.isDisabled()).toBe(true);
		await password.fill('password123');
		expect(await rule('common').getAttribute('data-ok')).toBe('false');
		// The toggle shows what is typed, and hides it again.
		await page.getByRole('button', { name: 'Show' }).click();
		expect(await password.getAttribute('type')).toBe('text');
		await page.getByRole('button', { name: 'Hide' }).click();
		expect(await password.getAttribute('type')).toBe('password');

		// A name already taken: said once, in words, without a developer's prefix.
		const taken = await signUp(await app.session(), app.url(), 'dana');
		await page.getByLabel('Name').fill(taken.name);
		await password.fill(PASSWORD);
		expect(await submit.isDisabled()).toBe(false);
		await submit.click();
		const alerts = page.getByRole('alert');
		await expect.poll(() => alerts.count(), { timeout: UI_TIMEOUT }).toBe(1);
		const message = (await alerts.textContent()) ?? '';
		expect(message).toMatch(/^[A-Z].*\.$/);
		expect(message).not.toMatch(/invalid request|body:|name_taken/);
	});

	it('stays signed in when a page is left while its token refresh is in flight', async () => {
		const ana = await signUp(await app.session(), app.url(), 'ana');
		const { page } = ana;
		// Every page load renews the session; leaving at once can lose the answer (and the rotated cookie with it).
		for (let i = 0; i < 8; i++) {
			const refreshing = page.waitForRequest((r) => r.url().endsWith('/api/auth/refresh'));
			await page.goto(`${app.url()}/`);
			await refreshing;
			await page.goto(`${app.url()}/search`);
		}
		await waitForApp(page);
		await page.getByTestId('search-input').waitFor({ timeout: UI_TIMEOUT });
		await expect
			.poll(() => page.getByTestId('current-user').textContent(), { timeout: UI_TIMEOUT })
			.toBe(ana.name);
		expect(new URL(page.url()).pathname).toBe('/search');
		expect((await api(ana, 'GET', '/api/me')).status).toBe(200);
	});
});

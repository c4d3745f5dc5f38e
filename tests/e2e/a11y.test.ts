import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { chromiumAvailable, waitForApp } from '../helpers/browser.ts';
import { appAndBrowser } from '../helpers/e2e-suite.ts';
import { api, signUp, UI_TIMEOUT, type BrowserUser } from '../helpers/live-ui.ts';

/**
 * Accessibility (issue 20, check 5): axe-core finds no WCAG 2.2 A/AA violation on any page, in light and dark;
 * a room opens with the focus in the composer, and the message list is one Tab stop away from it.
 */

const app = appAndBrowser();
const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

interface Violation {
	id: string;
	help: string;
	nodes: { target: string[]; failureSummary: string }[];
}

/** axe-core's rules on the page as it is; each violation as one readable line per node. */
async function violations(page: Page): Promise<string[]> {
	await page.addScriptTag({ content: axeSource });
	const found = await page.evaluate(async () => {
		const axe = (window as unknown as { axe: { run(o: object): Promise<{ violations: Violation[] }> } }).axe;
		// Every rule axe runs by default: WCAG 2.0–2.2 A and AA, and its best practices (landmarks, one h1, …).
		const result = await axe.run(document);
		return result.violations;
	});
	return found.flatMap((v) =>
		v.nodes.map(
			(n) => `${v.id} (${v.help}): ${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`,
		),
	);
}

/** Every page's violations, asserted together at the end of a test: one run shows them all. */
const found: Record<string, string[]> = {};

async function expectClean(page: Page, what: string): Promise<void> {
	const list = await violations(page);
	if (list.length) found[what] = list;
}

describe.skipIf(!chromiumAvailable)('accessibility', () => {
	for (const colorScheme of ['light', 'dark'] as const) {
		it(`has no axe-core violations on any page (${colorScheme})`, async () => {
			// The test's own script (axe) is added to the page: the app's CSP is bypassed for it alone.
			const options = { colorScheme, bypassCSP: true };
			const signedOut = await (await app.session(options)).page();
			await signedOut.goto(`${app.url()}/login`);
			await waitForApp(signedOut);
			await signedOut.getByRole('heading', { level: 1 }).waitFor(); // past "Loading…"
			await expectClean(signedOut, `login ${colorScheme}`);
			await signedOut.goto(`${app.url()}/register`);
			await waitForApp(signedOut);
			await signedOut.getByRole('heading', { level: 1 }).waitFor();
			await expectClean(signedOut, `register ${colorScheme}`);

			const ana: BrowserUser = await signUp(await app.session(options), app.url(), 'ana');
			const ben: BrowserUser = await signUp(await app.session(options), app.url(), 'ben');
			const group = await api(ana, 'POST', '/api/rooms', {
				name: 'Busy',
				isGroup: true,
				memberIds: [ben.id],
			});
			const roomId = group.body.id as string;
			await ben.page.goto(`${app.url()}/rooms/${roomId}`);
			await waitForApp(ben.page);
			const composer = ben.page.getByTestId('composer');
			for (const text of [
				`Morning @${ana.name}! **Bold**, _italic_, \`code\` and https://example.com`,
				'```js\nconst busy = true;\n```',
				'> a quote\n\n- a list\n- of things',
			]) {
				await composer.fill(text);
				await composer.press('Enter');
			}
			const { page } = ana;
			await page.goto(`${app.url()}/`);
			await waitForApp(page);
			await page.getByTestId('room-item').first().waitFor({ timeout: UI_TIMEOUT });
			await expectClean(page, `room list ${colorScheme}`);

			await page.goto(`${app.url()}/rooms/${roomId}`);
			await waitForApp(page);
			await expect.poll(() => page.getByTestId('message').count(), { timeout: UI_TIMEOUT }).toBe(3);
			await page.getByTestId('message').first().getByTestId('react-button').click({ force: true });
			await expectClean(page, `busy room ${colorScheme}`);
			await page.getByTestId('members-toggle').click();
			await expectClean(page, `room settings ${colorScheme}`);

			await page.goto(`${app.url()}/search?q=busy`);
			await waitForApp(page);
			await expectClean(page, `search ${colorScheme}`);
			await page.goto(`${app.url()}/account`);
			await waitForApp(page);
			await page.getByTestId('sessions').waitFor();
			await expectClean(page, `account ${colorScheme}`);
			await page.goto(`${app.url()}/no/such/page`);
			await waitForApp(page);
			await expectClean(page, `not found ${colorScheme}`);
			expect(found).toEqual({});
		});
	}

	it('opens a room with the focus in the composer; the message list is one Tab stop, walked with the arrows', async () => {
		const ana = await signUp(await app.session(), app.url(), 'ana');
		const ben = await signUp(await app.session(), app.url(), 'ben');
		const room = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		const { page } = ana;
		await page.goto(`${app.url()}/rooms/${room.body.id}`);
		await waitForApp(page);
		const composer = page.getByTestId('composer');
		for (const text of ['one [link](https://example.com)', 'two', 'three']) {
			await composer.fill(text);
			await composer.press('Enter');
		}
		await expect.poll(() => page.getByTestId('message').count(), { timeout: UI_TIMEOUT }).toBe(3);
		await page.reload();
		await waitForApp(page);
		await page.getByTestId('message').nth(2).waitFor();
		// Until the room knows it holds its whole history, "Show earlier messages" is a stop of its own in the list,
		// before the messages (after a reload, until the sync and the server's window are in).
		await page.getByTestId('history-start').waitFor({ timeout: UI_TIMEOUT });

		const focused = () =>
			page.evaluate(() => {
				const el = document.activeElement as HTMLElement | null;
				return {
					testid: el?.dataset.testid ?? el?.tagName.toLowerCase(),
					text: el?.closest('article')?.querySelector('[data-testid="message-content"]')?.textContent ?? null,
				};
			});
		await expect.poll(() => focused()).toEqual({ testid: 'composer', text: null });
		// Shift+Tab: from the composer to the newest message, in one stop (each message has four actions and a link).
		await page.keyboard.press('Shift+Tab');
		expect(await focused()).toEqual({ testid: 'message', text: 'three' });
		await page.keyboard.press('ArrowUp');
		await page.keyboard.press('ArrowUp');
		expect(await focused()).toEqual({ testid: 'message', text: 'one link' });
		// Tab goes into that message (its link first), Escape back to the message.
		await page.keyboard.press('Tab');
		expect(await page.evaluate(() => (document.activeElement as HTMLAnchorElement).href)).toBe(
			'https://example.com/',
		);
		await page.keyboard.press('Escape');
		expect(await focused()).toEqual({ testid: 'message', text: 'one link' });
		// One more Shift+Tab leaves the list: none of the other messages' controls is a stop.
		await page.keyboard.press('Shift+Tab');
		const after = await page.evaluate(() => document.activeElement?.closest('[role="log"]') === null);
		expect(after).toBe(true);
		// And back into the list lands on the message last visited.
		await page.keyboard.press('Tab');
		expect(await focused()).toEqual({ testid: 'message', text: 'one link' });
	});

	it('keeps the message list’s Tab stop on the newest message as messages arrive, until the user moves it', async () => {
		const ana = await signUp(await app.session(), app.url(), 'ana');
		const ben = await signUp(await app.session(), app.url(), 'ben');
		const room = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		const url = `${app.url()}/rooms/${room.body.id}`;
		await ana.page.goto(url);
		await ben.page.goto(url);
		await Promise.all([waitForApp(ana.page), waitForApp(ben.page)]);
		const say = async (who: BrowserUser, text: string, count: number) => {
			await who.page.getByTestId('composer').fill(text);
			await who.page.getByTestId('composer').press('Enter');
			await expect.poll(() => ana.page.getByTestId('message').count(), { timeout: UI_TIMEOUT }).toBe(count);
		};
		const focusedText = () =>
			ana.page.evaluate(
				() =>
					document.activeElement?.closest('article')?.querySelector('[data-testid="message-content"]')
						?.textContent ?? null,
			);
		await say(ana, 'first', 1);
		// Ben's message arrives while Ana is in the composer: the list's stop moves on to it.
		await say(ben, 'second', 2);
		await ana.page.getByTestId('composer').focus();
		await ana.page.keyboard.press('Shift+Tab');
		expect(await focusedText()).toBe('second');
		// Once Ana has moved in the list, a new message leaves the stop where she was.
		await ana.page.keyboard.press('ArrowUp');
		expect(await focusedText()).toBe('first');
		await say(ben, 'third', 3);
		await ana.page.getByTestId('composer').focus();
		await ana.page.keyboard.press('Shift+Tab');
		expect(await focusedText()).toBe('first');
	});
});

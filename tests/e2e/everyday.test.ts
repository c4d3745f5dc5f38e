import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { chromiumAvailable, waitForApp } from '../helpers/browser.ts';
import { appAndBrowser } from '../helpers/e2e-suite.ts';
import { api, signUp, UI_TIMEOUT, type BrowserUser } from '../helpers/live-ui.ts';

/**
 * Everyday chat in the browser (issue 20): formatted messages and links that cannot run anything, drafts kept per
 * room, Up to edit, a composer that shrinks back. Real server, real Chromium, users registered per test.
 */

async function openRoom(page: Page, roomId: string): Promise<void> {
	await page.goto(`${app.url()}/rooms/${roomId}`);
	await waitForApp(page);
	await page.getByTestId('composer').waitFor();
	await expect
		.poll(() => page.getByTestId('connection-status').getAttribute('data-status'), { timeout: UI_TIMEOUT })
		.toBe('synced');
}

/** The message whose text contains `marker`. */
const message = (page: Page, marker: string) => page.getByTestId('message').filter({ hasText: marker });

function expectCleanConsole(u: BrowserUser): void {
	for (const page of u.session.context.pages()) expect(u.session.errors(page), page.url()).toEqual([]);
}

const app = appAndBrowser();

describe.skipIf(!chromiumAvailable)('everyday chat in the browser', () => {
	const user = async (prefix: string): Promise<BrowserUser> => signUp(await app.session(), app.url(), prefix);

	it('renders links, bold, code blocks and mentions, and shows HTML payloads as text that runs nothing', async () => {
		const [ana, ben] = await Promise.all([user('ana'), user('ben')]);
		const room = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		expect(room.status).toBe(201);
		const roomId = room.body.id as string;
		await Promise.all([openRoom(ana.page, roomId), openRoom(ben.page, roomId)]);

		const content = [
			`Release notes ${ben.name.slice(0, 3)}-marker: **shipped** for @${ben.name}, see https://example.com/docs?a=1`,
			'```ts',
			'const x = 1 < 2;',
			'```',
			'<script>window.__pwned = "script"</script> <img src=x onerror="window.__pwned = \'img\'">',
			'[click me](javascript:window.__pwned="link") and [mail](mailto:ops@example.com)',
		].join('\n');
		const composer = ana.page.getByTestId('composer');
		await composer.fill(content);
		await composer.press('Enter');
		await expect.poll(() => composer.inputValue()).toBe('');

		for (const page of [ana.page, ben.page]) {
			const body = message(page, 'marker').getByTestId('message-content');
			await body.waitFor({ timeout: UI_TIMEOUT });
			// The link: clickable, opening outside the app, without the opener or the referrer.
			const link = body.locator('a[href="https://example.com/docs?a=1"]');
			expect(await link.getAttribute('rel')).toBe('noopener noreferrer');
			expect(await link.getAttribute('target')).toBe('_blank');
			expect(await body.locator('a[href^="mailto:ops@example.com"]').count()).toBe(1);
			// Formatting renders; the mention inside formatted text still is one.
			expect(await body.locator('strong').textContent()).toBe('shipped');
			expect(await body.locator('pre code').textContent()).toBe('const x = 1 < 2;');
			expect(await body.getByTestId('mention').textContent()).toBe(`@${ben.name}`);
			// The payloads are text: no element came of them, nothing ran, the javascript: link is not a link.
			expect(await body.locator('script, img, iframe, [onerror]').count()).toBe(0);
			expect(await body.locator('a').count()).toBe(2);
			const text = await body.textContent();
			expect(text).toContain('<script>window.__pwned = "script"</script>');
			expect(text).toContain(`<img src=x onerror="window.__pwned = 'img'">`);
			expect(text).toContain('[click me](javascript:window.__pwned="link")');
			expect(await page.evaluate(() => (window as { __pwned?: string }).__pwned)).toBeUndefined();
		}
		// Ben's mention is highlighted as his; the room list previews the words without the markup.
		await expect
			.poll(() => message(ben.page, 'marker').getAttribute('data-mentions-me'), { timeout: UI_TIMEOUT })
			.toBe('true');
		await ben.page.getByRole('link', { name: 'Back to rooms' }).click();
		const preview = ben.page.locator(`[data-testid="room-item"][data-room-id="${roomId}"] .preview`);
		await expect.poll(() => preview.textContent(), { timeout: UI_TIMEOUT }).toContain('shipped for');
		expect(await preview.textContent()).not.toContain('**');
		expectCleanConsole(ana);
		expectCleanConsole(ben);
	});

	it('keeps a draft per room across a room switch and a reload; Up edits the last own message', async () => {
		const [ana, ben] = await Promise.all([user('ana'), user('ben')]);
		const direct = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		const group = await api(ana, 'POST', '/api/rooms', {
			name: 'Drafts',
			isGroup: true,
			memberIds: [ben.id],
		});
		const [a, b] = [direct.body.id as string, group.body.id as string];
		const { page } = ana;
		await openRoom(page, a);
		const composer = page.getByTestId('composer');

		// Shift+Enter adds a line; after sending, the composer is one line tall again.
		const oneLine = (await composer.boundingBox())!.height;
		await composer.pressSequentially('line one');
		await composer.press('Shift+Enter');
		await composer.pressSequentially('line two');
		await composer.press('Shift+Enter');
		await composer.pressSequentially('line three');
		expect(await composer.inputValue()).toBe('line one\nline two\nline three');
		expect((await composer.boundingBox())!.height).toBeGreaterThan(oneLine);
		await composer.press('Enter');
		await message(page, 'line three').waitFor({ timeout: UI_TIMEOUT });
		await expect.poll(async () => (await composer.boundingBox())!.height).toBe(oneLine);

		// A draft in room A survives going to room B (through the app, no reload) and back.
		await composer.fill('half a thought');
		await page.getByRole('link', { name: 'Back to rooms' }).click();
		await page.locator(`[data-testid="room-item"][data-room-id="${b}"]`).click();
		await page.waitForURL(`**/rooms/${b}`);
		await expect.poll(() => composer.inputValue()).toBe('');
		await composer.fill('group draft');
		await page.getByRole('link', { name: 'Back to rooms' }).click();
		await page.locator(`[data-testid="room-item"][data-room-id="${a}"]`).click();
		await page.waitForURL(`**/rooms/${a}`);
		await expect.poll(() => composer.inputValue()).toBe('half a thought');
		// …and a reload, in both rooms.
		await page.reload();
		await waitForApp(page);
		await expect.poll(() => composer.inputValue()).toBe('half a thought');
		await openRoom(page, b);
		await expect.poll(() => composer.inputValue()).toBe('group draft');

		// Up in an empty composer edits the last own message; the draft comes back after the edit.
		await openRoom(page, a);
		await composer.fill('');
		await composer.press('Enter');
		await composer.fill('first version');
		await composer.press('Enter');
		await message(page, 'first version').waitFor({ timeout: UI_TIMEOUT });
		await composer.press('ArrowUp');
		await page.getByTestId('edit-preview').waitFor();
		expect(await composer.inputValue()).toBe('first version');
		await composer.fill('second version');
		await composer.press('Enter');
		await message(page, 'second version').getByTestId('message-edited').waitFor({ timeout: UI_TIMEOUT });
		expect(await message(page, 'first version').count()).toBe(0);
		// The sent message is not a draft any more: a reload shows an empty composer.
		await page.reload();
		await waitForApp(page);
		await page.getByTestId('composer').waitFor();
		expect(await composer.inputValue()).toBe('');
		expectCleanConsole(ana);
	});

	it('an unknown address shows a page with a way back; Esc closes the start-chat dialog at once', async () => {
		const ana = await user('ana');
		const { page } = ana;
		await page.goto(`${app.url()}/no/such/page`);
		await waitForApp(page);
		const notFound = page.getByTestId('error-page');
		await notFound.waitFor({ timeout: UI_TIMEOUT });
		expect(await notFound.getAttribute('data-status')).toBe('404');
		expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('This page does not exist');
		await page.getByTestId('error-home').click();
		await page.getByTestId('start-chat').waitFor({ timeout: UI_TIMEOUT });

		await page.getByTestId('start-chat').click();
		const dialog = page.getByTestId('start-chat-dialog');
		await dialog.getByTestId('user-search').fill('someone');
		await page.keyboard.press('Escape');
		await expect.poll(() => dialog.isVisible()).toBe(false);
		expectCleanConsole(ana);
	});

	it('inserts emoji from the picker and by :shortcode:, reacts with any emoji, all from this server', async () => {
		const [ana, ben] = await Promise.all([user('ana'), user('ben')]);
		const room = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		const { page } = ana;
		const requested: string[] = [];
		page.on('request', (request) => requested.push(request.url()));
		await openRoom(page, room.body.id);
		const composer = page.getByTestId('composer');

		// The picker: search, click, and the emoji is where the cursor was.
		await composer.fill('Launch ');
		// Its button opens and closes it.
		const picker = page.getByTestId('emoji-picker');
		await page.getByTestId('emoji-button').click();
		await picker.waitFor();
		await page.getByTestId('emoji-button').click();
		await expect.poll(() => picker.count()).toBe(0);
		await page.getByTestId('emoji-button').click();
		await picker.locator('emoji-picker input').fill('rocket');
		await picker
			.locator('emoji-picker')
			.getByRole('option', { name: /rocket/i })
			.first()
			.click();
		await expect.poll(() => composer.inputValue()).toBe('Launch 🚀');
		expect(await picker.count()).toBe(0);

		// A shortcode completes like a mention.
		await composer.pressSequentially(' :thumbsu');
		const option = page.getByTestId('mention-option').first();
		await expect.poll(() => option.textContent(), { timeout: UI_TIMEOUT }).toContain(':thumbsup:');
		await composer.press('Enter');
		// (The data writes thumbs-up with its emoji presentation selector, U+FE0F.)
		await expect.poll(() => composer.inputValue()).toMatch(/^Launch 🚀 👍\uFE0F? $/u);
		await composer.press('Enter');
		await message(page, 'Launch 🚀 👍').waitFor({ timeout: UI_TIMEOUT });

		// A reaction that is not one of the six quick ones.
		await message(page, 'Launch').getByTestId('react-button').click();
		await message(page, 'Launch').getByTestId('more-reactions').click();
		await page.locator('[data-testid="emoji-picker"] emoji-picker input').fill('tada');
		await page
			.locator('[data-testid="emoji-picker"] emoji-picker')
			.getByRole('option', { name: /party popper/i })
			.first()
			.click();
		await message(page, 'Launch')
			.locator('[data-testid="reaction"][data-emoji="🎉"]')
			.waitFor({ timeout: UI_TIMEOUT });

		// Everything came from this server; the service worker keeps the data for offline use.
		expect(requested.filter((url) => !url.startsWith(app.url()))).toEqual([]);
		const worker = await (await fetch(`${app.url()}/sw.js`)).text();
		expect(worker).toMatch(/data[.-][\w-]+\.json/);
		expectCleanConsole(ana);
	});
});

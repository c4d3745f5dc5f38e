import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { chromiumAvailable, waitForApp, type BrowserSession } from '../helpers/browser.ts';
import { appAndBrowser } from '../helpers/e2e-suite.ts';
import { controlledByWorker } from '../helpers/live-ui.ts';

/**
 * The chat as two people use it (issue 3, checks 1, 2, 3 and 5): Ana and Ben, each in their own browser context,
 * on the real server. Every test registers its own pair of users, so each test stands alone.
 */

const PASSWORD = 'correct horse battery';
/** How long a UI change may take to show up (a round trip through the server included). */
const UI_TIMEOUT = 15_000;

const app = appAndBrowser();

/** A short random suffix: names and texts are unique per run, so nothing is confused with another test's. */
const unique = () => randomBytes(4).toString('hex');

interface User {
	name: string;
	session: BrowserSession;
	page: Page;
}

async function newUser(prefix: string): Promise<User> {
	const session = await app.session();
	const page = await session.page();
	return { name: `${prefix}-${unique()}`, session, page };
}

/** Registers through the form at /register and waits for the room list. */
async function register(user: User): Promise<void> {
	const { page } = user;
	await page.goto(`${app.url()}/register`);
	await waitForApp(page);
	await page.getByLabel('Name').fill(user.name);
	await page.getByLabel('Password').fill(PASSWORD);
	await page.getByRole('button', { name: 'Create an account' }).click();
	await expect
		.poll(() => page.getByTestId('current-user').textContent(), { timeout: UI_TIMEOUT })
		.toBe(user.name);
	await page.getByTestId('start-chat').waitFor();
}

/** From the room list: Start chat → search → "Chat <name>". Returns the room id from the URL it lands on. */
async function startChatWith(user: User, other: User): Promise<string> {
	const { page } = user;
	await page.getByTestId('start-chat').click();
	const dialog = page.getByTestId('start-chat-dialog');
	await dialog.getByTestId('user-search').fill(other.name);
	await dialog.getByRole('button', { name: `Chat ${other.name}`, exact: true }).click();
	await page.waitForURL(/\/rooms\/[0-9a-f-]{36}$/, { timeout: UI_TIMEOUT });
	const roomId = new URL(page.url()).pathname.split('/').pop() as string;
	await page.getByTestId('composer').waitFor();
	return roomId;
}

async function openRoom(user: User, roomId: string): Promise<void> {
	await user.page.goto(`${app.url()}/rooms/${roomId}`);
	await waitForApp(user.page);
	await user.page.getByTestId('composer').waitFor();
}

/** Types `text` into the composer and presses Enter. */
async function send(page: Page, text: string): Promise<void> {
	const composer = page.getByTestId('composer');
	await composer.fill(text);
	await composer.press('Enter');
	await expect.poll(() => composer.inputValue()).toBe('');
}

/** The rendered message whose content is exactly `text`. */
const message = (page: Page, text: string) =>
	page
		.getByTestId('message')
		.filter({ has: page.getByTestId('message-content').getByText(text, { exact: true }) });

/** The contents of every rendered message, in display order. */
const contents = (page: Page) => page.getByTestId('message-content').allTextContents();

/** The statuses of the own messages whose content contains `marker`. */
async function ownStatuses(page: Page, marker: string): Promise<string[]> {
	return page
		.locator('[data-testid="message"][data-own="true"]')
		.filter({ hasText: marker })
		.evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-status') ?? ''));
}

/** Ana and Ben registered, with their 1:1 room open on both sides (Ben follows the link Ana is on). */
async function pairInRoom(options: { worker?: boolean } = {}) {
	const ana = await newUser('ana');
	const ben = await newUser('ben');
	await Promise.all([register(ana), register(ben)]);
	if (options.worker) await Promise.all([controlledByWorker(ana.page), controlledByWorker(ben.page)]);
	const roomId = await startChatWith(ana, ben);
	await openRoom(ben, roomId);
	await expectSynced(ana.page);
	await expectSynced(ben.page);
	return { ana, ben, roomId };
}

async function expectSynced(page: Page): Promise<void> {
	await expect
		.poll(() => page.getByTestId('connection-status').getAttribute('data-status'), { timeout: UI_TIMEOUT })
		.toBe('synced');
}

/** No page of these users logged a console error or threw (the app promises "no console errors"). */
function expectCleanConsoles(...users: User[]): void {
	for (const user of users) {
		for (const page of user.session.context.pages()) {
			expect(user.session.errors(page), `console errors of ${user.name} at ${page.url()}`).toEqual([]);
		}
	}
}

describe.skipIf(!chromiumAvailable)('chatting in the browser', () => {
	it('Ana and Ben chat live in a 1:1 room', async () => {
		const { ana, ben, roomId } = await pairInRoom();
		const tag = unique();
		const hello = `Hello Ben ${tag}`;
		const hi = `Hi Ana ${tag}`;
		const reply = `Replying to you ${tag}`;

		await send(ana.page, hello);
		await message(ben.page, hello).waitFor({ timeout: UI_TIMEOUT });
		await expect
			.poll(() => message(ben.page, hello).getByTestId('message-sender').textContent())
			.toBe(ana.name);

		await send(ben.page, hi);
		await message(ana.page, hi).waitFor({ timeout: UI_TIMEOUT });
		await expect.poll(() => message(ana.page, hi).getByTestId('message-sender').textContent()).toBe(ben.name);

		// Ben types without sending: Ana sees it, with his name.
		await ben.page.getByTestId('composer').pressSequentially('still thinking', { delay: 20 });
		await expect
			.poll(() => ana.page.getByTestId('typing').textContent(), { timeout: UI_TIMEOUT })
			.toBe(`${ben.name} is typing…`);

		// Ben has the room open: Ana's header shows him online.
		const dot = ana.page.getByTestId('presence-dot');
		await expect.poll(() => dot.getAttribute('data-online'), { timeout: UI_TIMEOUT }).toBe('true');
		expect(await dot.getAttribute('aria-label')).toBe(`${ben.name} is online`);

		// Ben replies to Ana's message: the reply carries a quote of it, on both sides.
		await message(ben.page, hello).getByTestId('reply-button').click();
		await expect.poll(() => ben.page.getByTestId('reply-preview').textContent()).toContain(hello);
		await send(ben.page, reply);
		await expect.poll(() => ben.page.getByTestId('reply-preview').count()).toBe(0);
		const quoteAtAna = message(ana.page, reply).getByTestId('reply-quote');
		await quoteAtAna.waitFor({ timeout: UI_TIMEOUT });
		expect(await quoteAtAna.textContent()).toContain(hello);
		expect(await quoteAtAna.textContent()).toContain(ana.name);
		expect(await message(ben.page, reply).getByTestId('reply-quote').textContent()).toContain(hello);
		// Once sent, the typing indicator goes away.
		await expect.poll(() => ana.page.getByTestId('typing').count(), { timeout: UI_TIMEOUT }).toBe(0);

		// Every own message ends acknowledged by the server; each shows once on both sides.
		await expect.poll(() => ownStatuses(ana.page, tag), { timeout: UI_TIMEOUT }).toEqual(['synced']);
		await expect
			.poll(() => ownStatuses(ben.page, tag), { timeout: UI_TIMEOUT })
			.toEqual(['synced', 'synced']);
		expect(await contents(ana.page)).toEqual([hello, hi, reply]);
		expect(await contents(ben.page)).toEqual([hello, hi, reply]);

		// Ben's room list has the room too (the deep link refreshed it).
		await ben.page.getByRole('link', { name: 'Back to rooms' }).click();
		await ben.page
			.locator(`[data-testid="room-item"][data-room-id="${roomId}"]`)
			.waitFor({ timeout: UI_TIMEOUT });

		expectCleanConsoles(ana, ben);
	});

	it('Ana edits and deletes her message, both react, also while one of them is offline', async () => {
		const { ana, ben } = await pairInRoom();
		const tag = unique();
		await send(ana.page, `draft ${tag}`);
		const id = await message(ana.page, `draft ${tag}`).getAttribute('data-client-msg-id');
		const at = (page: Page) => page.locator(`[data-testid="message"][data-client-msg-id="${id}"]`);
		await at(ben.page).waitFor({ timeout: UI_TIMEOUT });
		const text = (page: Page) => at(page).getByTestId('message-content').textContent();
		const reactions = (page: Page) =>
			at(page)
				.getByTestId('reaction')
				.evaluateAll((nodes) =>
					nodes.map((n) => `${n.getAttribute('data-emoji')}${n.textContent?.replace(/\D/g, '')}`),
				);
		const react = async (page: Page, emoji: string) => {
			await at(page).getByTestId('react-button').click();
			await at(page).locator(`[data-testid="pick-reaction"][data-emoji="${emoji}"]`).click();
		};

		// Edit: the composer takes the text; saving shows the new text and "edited" on both sides.
		await at(ana.page).getByTestId('edit-button').click();
		const composer = ana.page.getByTestId('composer');
		await expect.poll(() => composer.inputValue()).toBe(`draft ${tag}`);
		await composer.fill(`fixed ${tag}`);
		await composer.press('Enter');
		await expect.poll(() => text(ben.page), { timeout: UI_TIMEOUT }).toBe(`fixed ${tag}`);
		await at(ben.page).getByTestId('message-edited').waitFor();
		// Ben may not edit or delete Ana's message: no such buttons for him.
		expect(await at(ben.page).getByTestId('edit-button').count()).toBe(0);
		expect(await at(ben.page).getByTestId('delete-button').count()).toBe(0);

		// Reactions: counted once per person, with who reacted on hover; a second click takes one back.
		await react(ben.page, '👍');
		await expect.poll(() => reactions(ana.page), { timeout: UI_TIMEOUT }).toEqual(['👍1']);
		expect(await at(ana.page).getByTestId('reaction').getAttribute('title')).toBe(ben.name);
		await react(ana.page, '👍');
		await expect.poll(() => reactions(ben.page), { timeout: UI_TIMEOUT }).toEqual(['👍2']);
		await at(ana.page).getByTestId('reaction').click();
		await expect.poll(() => reactions(ben.page), { timeout: UI_TIMEOUT }).toEqual(['👍1']);

		// Offline: Ana edits again while Ben reacts; both arrive once she is back.
		await ana.session.context.setOffline(true);
		await expect
			.poll(() => ana.page.getByTestId('connection-status').getAttribute('data-status'), {
				timeout: UI_TIMEOUT,
			})
			.toBe('offline');
		await at(ana.page).getByTestId('edit-button').click();
		await composer.fill(`fixed offline ${tag}`);
		await composer.press('Enter');
		await react(ben.page, '🎉');
		await expect.poll(() => text(ana.page)).toBe(`fixed offline ${tag}`);
		expect(await text(ben.page)).toBe(`fixed ${tag}`);
		await ana.session.context.setOffline(false);
		await expect.poll(() => text(ben.page), { timeout: UI_TIMEOUT }).toBe(`fixed offline ${tag}`);
		await expect.poll(() => reactions(ana.page), { timeout: UI_TIMEOUT }).toEqual(['👍1', '🎉1']);

		// Delete, confirmed: "message deleted" on both sides, the text and the reactions gone.
		await at(ana.page).getByTestId('delete-button').click();
		await at(ana.page).getByTestId('confirm-delete').click();
		await at(ben.page).getByTestId('message-deleted').waitFor({ timeout: UI_TIMEOUT });
		expect(await at(ben.page).getByTestId('message-content').count()).toBe(0);
		expect(await reactions(ben.page)).toEqual([]);
		// "Synced" means nothing of Ana's is waiting: every edit, reaction and the delete were acknowledged.
		await expectSynced(ana.page);

		expectCleanConsoles(ana, ben);
	});

	it('Ben sees "seen by" once Ana reads, and Ana\'s unread count agrees on her two devices', async () => {
		const { ana, ben, roomId } = await pairInRoom();
		const tag = unique();
		// Ana's second device: another browser context, signed in as Ana, on the room list.
		const tablet = await newUser('tablet');
		tablet.name = ana.name;
		await tablet.page.goto(`${app.url()}/login`);
		await waitForApp(tablet.page);
		await tablet.page.getByLabel('Name').fill(ana.name);
		await tablet.page.getByLabel('Password').fill(PASSWORD);
		await tablet.page.getByRole('button', { name: 'Sign in' }).click();
		await tablet.page.getByTestId('start-chat').waitFor({ timeout: UI_TIMEOUT });
		// Ana's first device goes back to the room list: she is not reading now.
		await ana.page.getByRole('link', { name: 'Back to rooms' }).click();
		const unread = (page: Page) =>
			page
				.locator(`[data-testid="room-item"][data-room-id="${roomId}"]`)
				.getByTestId('unread-count')
				.textContent({ timeout: 1_000 })
				.catch(() => '0');

		await send(ben.page, `first ${tag}`);
		await send(ben.page, `second ${tag}`);
		await expect.poll(() => unread(ana.page), { timeout: UI_TIMEOUT }).toBe('2');
		await expect.poll(() => unread(tablet.page), { timeout: UI_TIMEOUT }).toBe('2');
		expect(await ben.page.getByTestId('seen-by').count()).toBe(0);

		// Ana reads on her tablet: Ben sees it, and her phone's count follows.
		await openRoom(tablet, roomId);
		await message(tablet.page, `second ${tag}`).waitFor({ timeout: UI_TIMEOUT });
		const seen = message(ben.page, `second ${tag}`).getByTestId('seen-by');
		await seen.waitFor({ timeout: UI_TIMEOUT });
		expect(await seen.textContent()).toBe('Seen by 1');
		expect(await seen.getAttribute('title')).toBe(`Seen by ${ana.name}`);
		await expect.poll(() => unread(ana.page), { timeout: UI_TIMEOUT }).toBe('0');

		// Read while offline: the tablet has Ben's next message, loses its network, and Ana reads it there. Ben sees
		// it seen, and the phone's count clears, once the tablet is back online.
		await tablet.page.getByRole('link', { name: 'Back to rooms' }).click();
		await send(ben.page, `third ${tag}`);
		await expect.poll(() => unread(tablet.page), { timeout: UI_TIMEOUT }).toBe('1');
		// The count comes from the server (the user channel); what matters offline is the tablet's own copy.
		await expect
			.poll(
				() =>
					tablet.page.evaluate(
						([id, text]) => {
							type Doc = { getMap(name: string): { values(): Iterable<{ content?: string }> } };
							const debug = (window as unknown as { __chatDebug: { roomDoc(id: string): Doc | null } })
								.__chatDebug;
							const doc = debug.roomDoc(id as string);
							return [...(doc?.getMap('messages').values() ?? [])].some((e) => e.content === text);
						},
						[roomId, `third ${tag}`],
					),
				{ timeout: UI_TIMEOUT },
			)
			.toBe(true);
		await tablet.session.context.setOffline(true);
		await tablet.page.locator(`[data-testid="room-item"][data-room-id="${roomId}"]`).click();
		await message(tablet.page, `third ${tag}`).waitFor({ timeout: UI_TIMEOUT });
		await tablet.page.waitForTimeout(1_500);
		const third = message(ben.page, `third ${tag}`).getByTestId('seen-by');
		expect(await third.count()).toBe(0);
		expect(await unread(ana.page)).toBe('1');
		await tablet.session.context.setOffline(false);
		await third.waitFor({ timeout: UI_TIMEOUT });
		await expect.poll(() => unread(ana.page), { timeout: UI_TIMEOUT }).toBe('0');

		expectCleanConsoles(ana, ben, tablet);
	});

	it('Ana mentions Ben with @ completion, and finds a message by search, online and offline', async () => {
		const { ana, ben, roomId } = await pairInRoom();
		const tag = unique();

		// "@" + the start of his name offers Ben; Enter takes it; Ben's copy is highlighted for him.
		const composer = ana.page.getByTestId('composer');
		await composer.pressSequentially(`look @${ben.name.slice(0, 4)}`, { delay: 10 });
		await expect
			.poll(() => ana.page.getByTestId('mention-option').allTextContents())
			.toEqual([`@${ben.name}`]);
		await composer.press('Enter');
		await expect.poll(() => composer.inputValue()).toBe(`look @${ben.name} `);
		await composer.pressSequentially(`at this ${tag}`);
		await composer.press('Enter');
		const atBen = message(ben.page, `look @${ben.name} at this ${tag}`);
		await atBen.waitFor({ timeout: UI_TIMEOUT });
		expect(await atBen.getAttribute('data-mentions-me')).toBe('true');
		expect(await atBen.getByTestId('mention').textContent()).toBe(`@${ben.name}`);
		expect(await message(ana.page, `look @${ben.name} at this ${tag}`).getAttribute('data-mentions-me')).toBe(
			'false',
		);

		// Search on the server: the hit is marked; the result opens the room at the message.
		// Letters only: Postgres' parser splits a hex tag like "02e133c7" into a number and a word.
		const word = `w${tag.replace(/\d/g, (d) => 'abcdefghij'[Number(d)] as string)}`;
		await send(ben.page, `the quarterly numbers ${word} are in`);
		await expectSynced(ben.page);
		await ana.page.getByRole('link', { name: 'Back to rooms' }).click();
		await ana.page.getByTestId('search-link').click();
		await ana.page.getByTestId('search-input').fill(`quarterly ${word}`);
		const result = ana.page.getByTestId('search-result');
		await expect.poll(() => result.count(), { timeout: UI_TIMEOUT }).toBe(1);
		expect(await result.locator('mark').allTextContents()).toEqual(['quarterly', word]);
		expect(await ana.page.getByTestId('search-local').count()).toBe(0);
		await result.click();
		await ana.page.waitForURL(new RegExp(`/rooms/${roomId}#m-`), { timeout: UI_TIMEOUT });
		const target = message(ana.page, `the quarterly numbers ${word} are in`);
		await target.waitFor({ timeout: UI_TIMEOUT });
		await expect.poll(() => target.getAttribute('data-highlighted'), { timeout: UI_TIMEOUT }).toBe('true');

		// Offline: the same search runs on this device and says so.
		await ana.session.context.setOffline(true);
		await ana.page
			.goto(`${app.url()}/search?q=${encodeURIComponent(`quarterly ${word}`)}`)
			.catch(() => undefined);
		await waitForApp(ana.page);
		await ana.page.getByTestId('search-local').waitFor({ timeout: UI_TIMEOUT });
		await expect.poll(() => result.count(), { timeout: UI_TIMEOUT }).toBe(1);
		expect(await result.locator('mark').allTextContents()).toEqual(['quarterly', word]);
		await ana.session.context.setOffline(false);

		expectCleanConsoles(ana, ben);
	});

	it("Ben's offline messages survive a reload and arrive exactly once, in order", async () => {
		const { ana, ben } = await pairInRoom({ worker: true });
		const tag = unique();
		const texts = [1, 2, 3].map((n) => `offline ${n} ${tag}`);

		await ben.session.context.setOffline(true);
		await expect
			.poll(() => ben.page.getByTestId('connection-status').getAttribute('data-status'), {
				timeout: UI_TIMEOUT,
			})
			.toBe('offline');
		for (const text of texts) await send(ben.page, text);
		await expect.poll(() => ownStatuses(ben.page, tag)).toEqual(['pending', 'pending', 'pending']);

		// A reload with no network: the service worker serves the shell, IndexedDB the messages, still pending.
		const reloaded = await ben.page.reload();
		expect(reloaded?.fromServiceWorker()).toBe(true);
		await waitForApp(ben.page);
		await ben.page.getByTestId('composer').waitFor({ timeout: UI_TIMEOUT });
		expect(await ben.page.getByTestId('connection-status').getAttribute('data-status')).toBe('offline');
		await expect
			.poll(() => ownStatuses(ben.page, tag), { timeout: UI_TIMEOUT })
			.toEqual(['pending', 'pending', 'pending']);
		expect((await contents(ben.page)).filter((text) => text.includes(tag))).toEqual(texts);
		expect((await contents(ana.page)).filter((text) => text.includes(tag))).toEqual([]);

		await ben.session.context.setOffline(false);
		await expect
			.poll(async () => (await contents(ana.page)).filter((text) => text.includes(tag)), {
				timeout: UI_TIMEOUT,
			})
			.toEqual(texts);
		await expect
			.poll(() => ownStatuses(ben.page, tag), { timeout: UI_TIMEOUT })
			.toEqual(['synced', 'synced', 'synced']);
		await expectSynced(ben.page);
		// Still exactly once each, now that Ben's side has settled too.
		expect((await contents(ana.page)).filter((text) => text.includes(tag))).toEqual(texts);
		expect((await contents(ben.page)).filter((text) => text.includes(tag))).toEqual(texts);

		expectCleanConsoles(ana, ben);
	});

	it.each([
		['the old socket’s close comes after the network', true],
		['the old socket’s close never comes', false],
	])('Ben comes back online when %s', async (_, closes) => {
		const { ana, ben } = await pairInRoom();
		const tag = unique();
		// The app closes its socket when the browser goes offline. A close cannot finish without the network, and
		// Chromium may report it only after the network is back, after the `online` event, while the socket still
		// reads as connected. Here that order is forced: Ben's page holds its sockets' closes (a held socket reads
		// as closing and sends nothing) until the app has handled the `online` event, or for ever (a close the
		// browser does not finish within seconds of the network's return is taken as done).
		await ben.page.evaluate(() => {
			const held: (() => void)[] = [];
			const page = window as { releaseCloses?: () => void };
			const close = WebSocket.prototype.close;
			const send = WebSocket.prototype.send;
			WebSocket.prototype.close = function (this: WebSocket, ...args: [number?, string?]) {
				Object.defineProperty(this, 'readyState', { get: () => WebSocket.CLOSING, configurable: true });
				held.push(() => {
					delete (this as { readyState?: number }).readyState;
					close.apply(this, args);
				});
			};
			WebSocket.prototype.send = function (this: WebSocket, data) {
				if (this.readyState === WebSocket.OPEN) send.call(this, data);
			};
			page.releaseCloses = () => {
				WebSocket.prototype.close = close;
				for (const release of held.splice(0)) release();
			};
		});
		await ben.session.context.setOffline(true);
		await expect
			.poll(() => ben.page.getByTestId('connection-status').getAttribute('data-status'), {
				timeout: UI_TIMEOUT,
			})
			.toBe('offline');
		await send(ben.page, `written offline ${tag}`);
		await ben.session.context.setOffline(false);
		await expect.poll(() => ben.page.evaluate(() => navigator.onLine)).toBe(true);
		await new Promise((resolve) => setTimeout(resolve, 200));
		if (closes) await ben.page.evaluate(() => (window as { releaseCloses?: () => void }).releaseCloses?.());
		await expect
			.poll(async () => (await contents(ana.page)).filter((text) => text.includes(tag)), {
				timeout: UI_TIMEOUT,
			})
			.toEqual([`written offline ${tag}`]);
		await expectSynced(ben.page);
		expectCleanConsoles(ana, ben);
	});

	it('A fresh tab with no network shows the room list and history after one visit', async () => {
		const { ana, ben, roomId } = await pairInRoom({ worker: true });
		const tag = unique();
		const fromAna = `Before the outage ${tag}`;
		const fromBen = `Noted ${tag}`;
		await send(ana.page, fromAna);
		await send(ben.page, fromBen);
		await message(ana.page, fromBen).waitFor({ timeout: UI_TIMEOUT });
		await expect.poll(() => ownStatuses(ana.page, tag), { timeout: UI_TIMEOUT }).toEqual(['synced']);

		// A cold start: the only tab is closed, the network goes, a new tab opens the app.
		expectCleanConsoles(ana);
		await ana.page.close();
		await ana.session.context.setOffline(true);
		const tab = await ana.session.context.newPage();
		const response = await tab.goto(`${app.url()}/`);
		expect(response?.fromServiceWorker()).toBe(true);
		await waitForApp(tab);
		expect(await tab.evaluate(() => navigator.onLine)).toBe(false);

		const item = tab.locator(`[data-testid="room-item"][data-room-id="${roomId}"]`);
		await item.waitFor({ timeout: UI_TIMEOUT });
		expect(await item.textContent()).toContain(ben.name);
		await item.click();
		await tab.waitForURL(`${app.url()}/rooms/${roomId}`);
		await message(tab, fromBen).waitFor({ timeout: UI_TIMEOUT });
		expect((await contents(tab)).filter((text) => text.includes(tag))).toEqual([fromAna, fromBen]);
		expect(await message(tab, fromAna).getAttribute('data-status')).toBe('synced');
		expect(await tab.getByTestId('connection-status').getAttribute('data-status')).toBe('offline');

		expectCleanConsoles(ana, ben);
	});

	it('A client whose document holds an update the server refuses recovers', async () => {
		const { ana, ben, roomId } = await pairInRoom();
		const tag = unique();
		const original = `Original from Ana ${tag}`;
		const valid = `Valid after the bad one ${tag}`;
		const later = `Later still works ${tag}`;

		const greeting = `Ben here ${tag}`;
		await send(ana.page, original);
		await message(ben.page, original).waitFor({ timeout: UI_TIMEOUT });
		await send(ben.page, greeting);
		await message(ana.page, greeting).waitFor({ timeout: UI_TIMEOUT });

		// Count every close the room's providers report (a rebuild replaces the provider; each new one is watched).
		await ben.page.evaluate((id) => {
			type Provider = { on(event: string, fn: () => void): void };
			const debug = (window as unknown as { __chatDebug: { roomProvider(id: string): Provider | null } })
				.__chatDebug;
			const w = window as unknown as { __closes: number; __providers: number };
			w.__closes = 0;
			w.__providers = 0;
			const seen = new WeakSet<Provider>();
			const watch = () => {
				const provider = debug.roomProvider(id);
				if (!provider || seen.has(provider)) return;
				seen.add(provider);
				w.__providers++;
				provider.on('close', () => w.__closes++);
			};
			watch();
			setInterval(watch, 10);
		}, roomId);
		const counts = () =>
			ben.page.evaluate(() => {
				const w = window as unknown as { __closes: number; __providers: number };
				return { closes: w.__closes, providers: w.__providers };
			});

		// Into Ben's live document, past the UI's validation: an event with 4,001 characters of content, then at
		// once (same task, so both updates are on the wire before the refusal comes back) a valid message.
		const refusedId = crypto.randomUUID();
		await ben.page.getByTestId('composer').fill(valid);
		await ben.page.evaluate(
			({ id, refusedId, greeting, content }) => {
				type Event = { senderId: string; content: string };
				type Doc = {
					getMap(name: string): { set(key: string, value: unknown): void; values(): Iterable<Event> };
					transact(fn: () => void): void;
				};
				const debug = (window as unknown as { __chatDebug: { roomDoc(id: string): Doc | null } }).__chatDebug;
				const doc = debug.roomDoc(id);
				if (!doc) throw new Error('no document for the room');
				const messages = doc.getMap('messages');
				// Ben's own user id, from the message he sent (the server refuses events in someone else's name too).
				const senderId = [...messages.values()].find((event) => event.content === greeting)?.senderId;
				if (!senderId) throw new Error("Ben's greeting is not in his document");
				doc.transact(() =>
					messages.set(refusedId, {
						kind: 'message',
						clientMsgId: refusedId,
						senderId,
						content,
						createdAt: new Date().toISOString(),
					}),
				);
				document.querySelector<HTMLFormElement>('form.composer')?.requestSubmit();
			},
			{ id: roomId, refusedId, greeting, content: `x${tag}`.padEnd(4001, 'x') },
		);

		const notice = ben.page.getByTestId('room-notice');
		await notice.waitFor({ timeout: UI_TIMEOUT });
		expect(await notice.textContent()).toMatch(/refused by the server.*valid messages were kept/);

		// The valid message reaches Ana exactly once and turns synced for Ben.
		await expect
			.poll(async () => (await contents(ana.page)).filter((text) => text === valid), { timeout: UI_TIMEOUT })
			.toEqual([valid]);
		await expect
			.poll(() => message(ben.page, valid).getAttribute('data-status'), { timeout: UI_TIMEOUT })
			.toBe('synced');
		await expectSynced(ben.page);
		const settled = await counts();

		// Later sends still work, and the room settles: no provider keeps closing or being replaced.
		const start = Date.now();
		await send(ben.page, later);
		await message(ana.page, later).waitFor({ timeout: UI_TIMEOUT });
		await expect
			.poll(() => message(ben.page, later).getAttribute('data-status'), { timeout: UI_TIMEOUT })
			.toBe('synced');
		await ben.page.waitForTimeout(Math.max(0, 5_000 - (Date.now() - start)));
		expect(await counts()).toEqual(settled);
		// One refusal closed the first provider; one rebuilt document got one new provider.
		expect(settled).toEqual({ closes: 1, providers: 2 });

		// The refused event never reached Ana; Ben still sees his own copy of it, marked failed.
		expect((await contents(ana.page)).filter((text) => text.includes(`x${tag}`))).toEqual([]);
		expect(await ana.page.locator(`[data-client-msg-id="${refusedId}"]`).count()).toBe(0);
		expect(await ben.page.locator(`[data-client-msg-id="${refusedId}"]`).getAttribute('data-status')).toBe(
			'failed',
		);
		expect((await contents(ana.page)).filter((text) => text.includes(tag))).toEqual([
			original,
			greeting,
			valid,
			later,
		]);

		expectCleanConsoles(ana, ben);
	});

	it('A message sent while the room is being rebuilt after a refusal is not lost', async () => {
		const { ana, ben, roomId } = await pairInRoom();
		const tag = unique();
		const greeting = `Ben here ${tag}`;
		const during = `Sent during the rebuild ${tag}`;
		await send(ben.page, greeting);
		await message(ana.page, greeting).waitFor({ timeout: UI_TIMEOUT });

		// The moment the server closes the room for the refused update, Ben sends a message: it lands while the
		// refused copy is being torn down and the fresh one does not exist yet.
		await ben.page.getByTestId('composer').fill(during);
		await ben.page.evaluate(
			({ id, greeting, content }) => {
				type Event = { senderId: string; content: string };
				type Doc = {
					getMap(name: string): { set(key: string, value: unknown): void; values(): Iterable<Event> };
					transact(fn: () => void): void;
				};
				type Provider = { on(event: string, fn: () => void): void };
				const debug = (
					window as unknown as {
						__chatDebug: { roomDoc(id: string): Doc | null; roomProvider(id: string): Provider | null };
					}
				).__chatDebug;
				const doc = debug.roomDoc(id);
				const provider = debug.roomProvider(id);
				if (!doc || !provider) throw new Error('no document for the room');
				provider.on('close', () =>
					setTimeout(() => document.querySelector<HTMLFormElement>('form.composer')?.requestSubmit(), 0),
				);
				const messages = doc.getMap('messages');
				const senderId = [...messages.values()].find((event) => event.content === greeting)?.senderId;
				const refusedId = crypto.randomUUID();
				doc.transact(() =>
					messages.set(refusedId, {
						kind: 'message',
						clientMsgId: refusedId,
						senderId,
						content,
						createdAt: new Date().toISOString(),
					}),
				);
			},
			{ id: roomId, greeting, content: `x${tag}`.padEnd(4001, 'x') },
		);

		await ben.page.getByTestId('room-notice').waitFor({ timeout: UI_TIMEOUT });
		await message(ana.page, during).waitFor({ timeout: UI_TIMEOUT });
		await expect
			.poll(() => message(ben.page, during).getAttribute('data-status'), { timeout: UI_TIMEOUT })
			.toBe('synced');
		expect((await contents(ana.page)).filter((text) => text === during)).toEqual([during]);
		expectCleanConsoles(ana, ben);
	});

	it("A client that overwrote someone else's message is refused, gets the original back and keeps its own message", async () => {
		const { ana, ben, roomId } = await pairInRoom();
		const tag = unique();
		const original = `Original from Ana ${tag}`;
		const valid = `Ben's valid message ${tag}`;
		await send(ana.page, original);
		await message(ben.page, original).waitFor({ timeout: UI_TIMEOUT });

		// Ben's document rewrites Ana's entry (entries are written once), then a valid message follows at once.
		await ben.page.getByTestId('composer').fill(valid);
		await ben.page.evaluate(
			({ id, original }) => {
				type Event = { content: string };
				type Doc = {
					getMap(name: string): {
						set(key: string, value: unknown): void;
						entries(): Iterable<[string, Event]>;
					};
					transact(fn: () => void): void;
				};
				const debug = (window as unknown as { __chatDebug: { roomDoc(id: string): Doc | null } }).__chatDebug;
				const doc = debug.roomDoc(id);
				if (!doc) throw new Error('no document for the room');
				const messages = doc.getMap('messages');
				const entry = [...messages.entries()].find(([, event]) => event.content === original);
				if (!entry) throw new Error("Ana's message is not in Ben's document");
				doc.transact(() => messages.set(entry[0], { ...entry[1], content: 'tampered' }));
				document.querySelector<HTMLFormElement>('form.composer')?.requestSubmit();
			},
			{ id: roomId, original },
		);

		const notice = ben.page.getByTestId('room-notice');
		await notice.waitFor({ timeout: UI_TIMEOUT });
		expect(await notice.textContent()).toMatch(/refused by the server/);
		await expect
			.poll(() => message(ben.page, valid).getAttribute('data-status'), { timeout: UI_TIMEOUT })
			.toBe('synced');
		await expectSynced(ben.page);
		// The rebuilt copy is the server's: Ana's words again, on both sides; the valid message once each.
		expect((await contents(ben.page)).filter((text) => text.includes(tag) || text === 'tampered')).toEqual([
			original,
			valid,
		]);
		await expect
			.poll(
				async () => (await contents(ana.page)).filter((text) => text.includes(tag) || text === 'tampered'),
				{
					timeout: UI_TIMEOUT,
				},
			)
			.toEqual([original, valid]);

		expectCleanConsoles(ana, ben);
	});
});

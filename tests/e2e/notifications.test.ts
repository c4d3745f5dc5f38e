import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
	chromiumAvailable,
	ensureBuilt,
	launchBrowser,
	startAppServer,
	type AppServer,
	type BrowserSession,
	type SharedBrowser,
} from '../helpers/browser.ts';
import { connect, type TestClient } from '../helpers/collab.ts';
import { UI_TIMEOUT, api, signUp, type BrowserUser } from '../helpers/live-ui.ts';

/**
 * Desktop notifications from the user channel's `notify` messages: Ben has his room list open (no room in view)
 * and has allowed notifications through the browser's own permission API; Ana writes through a real Yjs client.
 * Every `new Notification(…)` of Ben's pages is counted by an init script that wraps the real constructor.
 */

interface Shown {
	title: string;
	body: string;
	tag: string;
}

/** How long "nothing more was shown" is watched for, after a later message that does notify has arrived. */
const QUIET_MS = 1_000;

let server: AppServer;
let browser: SharedBrowser;
const sessions: BrowserSession[] = [];
const clients: TestClient[] = [];

/** Counts the page's Notification constructions in `window.__shown` (set up before any script of the app). */
async function countNotifications(context: BrowserContext): Promise<void> {
	await context.addInitScript(() => {
		const Real = window.Notification;
		const shown: { title: string; body: string; tag: string }[] = [];
		const instances: Notification[] = [];
		Object.assign(window, { __shown: shown, __instances: instances });
		class Counted extends Real {
			constructor(title: string, options?: NotificationOptions) {
				super(title, options);
				shown.push({ title, body: options?.body ?? '', tag: options?.tag ?? '' });
				instances.push(this);
			}
		}
		window.Notification = Counted;
	});
}

const shown = (page: Page) => page.evaluate(() => (window as unknown as { __shown: Shown[] }).__shown);

/** Ana, and Ben with notifications granted and his room list open. */
async function anaAndBen(): Promise<{ ana: BrowserUser; ben: BrowserUser }> {
	const anaSession = await browser.newSession();
	const benSession = await browser.newSession();
	sessions.push(anaSession, benSession);
	await benSession.context.grantPermissions(['notifications'], { origin: server.url });
	await countNotifications(benSession.context);
	const [ana, ben] = await Promise.all([
		signUp(anaSession, server.url, 'ana'),
		signUp(benSession, server.url, 'ben'),
	]);
	return { ana, ben };
}

async function group(ana: BrowserUser, ben: BrowserUser, name: string): Promise<string> {
	const res = await api(ana, 'POST', '/api/rooms', { name, isGroup: true, memberIds: [ben.id] });
	expect(res.status).toBe(201);
	await ben.page.locator(`[data-room-id="${res.body.id}"]`).waitFor({ timeout: UI_TIMEOUT });
	return res.body.id as string;
}

/** Sets Ben's level for a room through the API and waits until his list shows it (the channel's `room`). */
async function setLevel(ben: BrowserUser, roomId: string, level: 'all' | 'mentions' | 'none'): Promise<void> {
	const res = await api(ben, 'PUT', `/api/rooms/${roomId}/notifications`, { level });
	expect(res.status).toBe(204);
	await ben.page
		.locator(`[data-room-id="${roomId}"][data-notify="${level}"]`)
		.waitFor({ timeout: UI_TIMEOUT });
}

/** Ana writes `text` into `roomId` with a real Yjs client and waits for the server's acknowledgement. */
async function say(ana: BrowserUser, roomId: string, text: string): Promise<string> {
	let client = clients.find((c) => c.provider.configuration.name === `room:${roomId}`);
	if (!client) {
		client = connect(`${server.url.replace(/^http/, 'ws')}/collab`, roomId, ana.accessToken, ana.id);
		clients.push(client);
	}
	const event = client.send(text);
	await client.synced();
	return event.clientMsgId;
}

/** Waits until `count` notifications were shown, then watches a moment longer that no other follows. */
async function expectShown(page: Page, count: number): Promise<Shown[]> {
	await expect
		.poll(async () => (await shown(page)).length, { timeout: UI_TIMEOUT })
		.toBeGreaterThanOrEqual(count);
	await page.waitForTimeout(QUIET_MS);
	const all = await shown(page);
	expect(all).toHaveLength(count);
	return all;
}

describe.skipIf(!chromiumAvailable)('desktop notifications', () => {
	beforeAll(async () => {
		const client = await ensureBuilt();
		server = await startAppServer(client);
		browser = await launchBrowser();
	}, 180_000);

	afterEach(async () => {
		for (const client of clients.splice(0)) client.destroy();
		while (sessions.length) await sessions.pop()?.close();
	});

	afterAll(async () => {
		await browser?.close();
		await server?.stop();
	});

	it('raises exactly one notification for a mention in a room that is not in view', async () => {
		const { ana, ben } = await anaAndBen();
		const design = await group(ana, ben, 'Design');
		await setLevel(ben, design, 'mentions');

		const id = await say(ana, design, `@${ben.name} could you look at the mockups?`);
		const [notification] = await expectShown(ben.page, 1);
		expect(notification).toEqual({
			title: `${ana.name} in Design`,
			body: `@${ben.name} could you look at the mockups?`,
			tag: id,
		});

		// A click on it opens the room (the OS calls the notification's click handler).
		await ben.page.evaluate(() =>
			(window as unknown as { __instances: Notification[] }).__instances[0]?.dispatchEvent(
				new Event('click'),
			),
		);
		await ben.page.waitForURL(`${server.url}/rooms/${design}`, { timeout: UI_TIMEOUT });
		await ben.page.getByTestId('composer').waitFor({ timeout: UI_TIMEOUT });
		expect(ben.session.errors(ben.page)).toEqual([]);
	});

	it('raises none for a muted room (set in the room header)', async () => {
		const { ana, ben } = await anaAndBen();
		const muted = await group(ana, ben, 'Muted');
		const control = await group(ana, ben, 'Control');
		await setLevel(ben, control, 'all');

		// Ben mutes the room in its settings, and goes back to his list.
		await ben.page.locator(`[data-room-id="${muted}"]`).click();
		await ben.page.getByTestId('members-toggle').click();
		await ben.page.getByTestId('notify-level').selectOption('none');
		await ben.page.getByRole('link', { name: 'Back to rooms' }).click();
		await ben.page.locator(`[data-room-id="${muted}"][data-notify="none"]`).waitFor({ timeout: UI_TIMEOUT });
		const rooms = await api(ben, 'GET', '/api/rooms');
		expect(rooms.body.items.find((r: { id: string }) => r.id === muted).notify).toBe('none');

		await say(ana, muted, `@${ben.name} you will not hear this`);
		// A message that does notify, after it: once it is shown, the muted one had its chance.
		await say(ana, control, 'this one you hear');
		const all = await expectShown(ben.page, 1);
		expect(all[0]?.title).toBe(`${ana.name} in Control`);
	});

	it('passes only mentions when a room is set to "mentions only"', async () => {
		const { ana, ben } = await anaAndBen();
		const team = await group(ana, ben, 'Team');
		await setLevel(ben, team, 'mentions');

		await say(ana, team, 'lunch is at noon');
		await say(ana, team, `@${ben.name} are you coming?`);
		const all = await expectShown(ben.page, 1);
		expect(all[0]?.body).toBe(`@${ben.name} are you coming?`);
	});

	it('raises none for your own message, written on another tab', async () => {
		const { ana, ben } = await anaAndBen();
		const room = await group(ana, ben, 'Everything');
		await setLevel(ben, room, 'all');

		// Ben writes from a second tab with the room open; his first tab shows the list.
		const tab = await ben.session.context.newPage();
		await tab.goto(`${server.url}/rooms/${room}`);
		const composer = tab.getByTestId('composer');
		await composer.fill('a note to everyone');
		await composer.press('Enter');
		await tab.locator('[data-testid="message"][data-own="true"][data-status="synced"]').waitFor({
			timeout: UI_TIMEOUT,
		});
		await say(ana, room, 'a reply from Ana');
		const all = await expectShown(ben.page, 1);
		expect(all[0]?.body).toBe('a reply from Ana');
		expect(ben.session.errors(ben.page)).toEqual([]);
	});

	it('asks for permission only from a click in the Notifications settings, and keeps the sound setting on the device', async () => {
		const session = await browser.newSession();
		sessions.push(session);
		await session.context.addInitScript(() => {
			const ask = Notification.requestPermission.bind(Notification);
			Object.assign(window, { __asked: 0 });
			Notification.requestPermission = () => {
				Object.assign(window, { __asked: (window as unknown as { __asked: number }).__asked + 1 });
				return ask();
			};
		});
		const ben = await signUp(session, server.url, 'ben');
		const asked = () => ben.page.evaluate(() => (window as unknown as { __asked: number }).__asked);
		expect(await asked()).toBe(0);

		await ben.page.getByTestId('notifications-button').click();
		const dialog = ben.page.getByTestId('notifications-dialog');
		expect(await asked()).toBe(0);
		await dialog.getByRole('button', { name: 'Enable desktop notifications' }).click();
		await expect.poll(asked).toBe(1);

		const sound = dialog.getByTestId('sound-toggle');
		expect(await sound.isChecked()).toBe(true);
		await sound.uncheck();
		await ben.page.reload();
		await ben.page.getByTestId('notifications-button').click();
		expect(await ben.page.getByTestId('sound-toggle').isChecked()).toBe(false);
		expect(await asked()).toBe(0);
	});
});

import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import { expect } from 'vitest';
import { waitForApp, type BrowserSession } from './browser.ts';

/**
 * Users of the live-channel browser tests (tests/e2e/live.test.ts, notifications.test.ts): registered through
 * the API (the test keeps that session's token for its own calls), then signed in through the app's form.
 */

export const PASSWORD = 'correct horse battery';
/** How long a UI change may take to show up when its timing is not what the test measures. */
export const UI_TIMEOUT = 15_000;

export interface BrowserUser {
	id: string;
	name: string;
	accessToken: string;
	session: BrowserSession;
	page: Page;
	/** The server this user's browser talks to. */
	url: string;
}

/** Registers `prefix-<random>` on `url` and signs in with it in the browser context of `session`. */
export async function signUp(session: BrowserSession, url: string, prefix: string): Promise<BrowserUser> {
	const page = await session.page();
	const name = `${prefix}-${randomBytes(4).toString('hex')}`;
	const res = await fetch(`${url}/api/auth/register`, {
		method: 'POST',
		headers: { 'content-type': 'application/json' },
		body: JSON.stringify({ name, password: PASSWORD }),
	});
	expect(res.status, await res.clone().text()).toBe(201);
	const body = (await res.json()) as { user: { id: string }; accessToken: string };
	const user = { id: body.user.id, name, accessToken: body.accessToken, session, page, url };
	await signIn(user);
	return user;
}

/** Signs in through the form at /login and waits until the user channel has delivered the room list. */
export async function signIn(user: BrowserUser): Promise<void> {
	const { page } = user;
	await page.goto(`${user.url}/login`);
	await waitForApp(page);
	await page.getByLabel('Name').fill(user.name);
	await page.getByLabel('Password').fill(PASSWORD);
	await page.getByRole('button', { name: 'Sign in' }).last().click();
	await page.locator('main[data-channel="live"]').waitFor({ timeout: UI_TIMEOUT });
}

/** Opens the room list and waits until the user channel has delivered the list. */
export async function openList(user: BrowserUser): Promise<void> {
	await user.page.goto(`${user.url}/`);
	await waitForApp(user.page);
	await user.page.locator('main[data-channel="live"]').waitFor({ timeout: UI_TIMEOUT });
}

/** The room ids of the list, top to bottom. */
export function listedRooms(page: Page): Promise<string[]> {
	return page
		.getByTestId('room-item')
		.evaluateAll((items) => items.map((item) => item.getAttribute('data-room-id') ?? ''));
}

/**
 * Starts watching the list for a room id not in `known`; resolves with that id and the time (ms since the
 * epoch) it was first rendered. Start it before the action whose effect it measures.
 */
export function nextNewRoom(page: Page, known: string[]): Promise<{ id: string; at: number }> {
	return page.evaluate(
		(known) =>
			new Promise<{ id: string; at: number }>((resolve) => {
				const find = () => {
					for (const item of document.querySelectorAll('[data-testid="room-item"]')) {
						const id = item.getAttribute('data-room-id');
						if (id && !known.includes(id)) return id;
					}
					return null;
				};
				const check = () => {
					const id = find();
					if (!id) return false;
					observer.disconnect();
					resolve({ id, at: Date.now() });
					return true;
				};
				const observer = new MutationObserver(() => void check());
				if (!check()) observer.observe(document.body, { childList: true, subtree: true });
			}),
		known,
	);
}

/** A JSON API call as `user` (the test's own fetch, not the browser's). */
export async function api(
	user: { accessToken: string; url: string },
	method: string,
	path: string,
	body?: unknown,
): Promise<{ status: number; body: any }> {
	const res = await fetch(`${user.url}${path}`, {
		method,
		headers: {
			authorization: `Bearer ${user.accessToken}`,
			...(body === undefined ? {} : { 'content-type': 'application/json' }),
		},
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	const text = await res.text();
	return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/**
 * Waits until the page's service worker is active and controls the page: it installs on the first visit
 * (`registerType: 'prompt'`: it does not claim the page that installed it), so the page is reloaded until it is.
 */
export async function controlledByWorker(page: Page): Promise<void> {
	await page.waitForFunction(
		async () => (await navigator.serviceWorker.getRegistration())?.active?.state === 'activated',
		undefined,
		{ timeout: UI_TIMEOUT },
	);
	await expect
		.poll(
			async () => {
				if (await page.evaluate(() => !!navigator.serviceWorker.controller)) return true;
				await page.reload();
				await waitForApp(page);
				return page.evaluate(() => !!navigator.serviceWorker.controller);
			},
			{ timeout: UI_TIMEOUT, interval: 250 },
		)
		.toBe(true);
}

/**
 * The README's screenshots: a real server with a fresh database, three people chatting through the app in Chromium,
 * then the room list and a room at 1440 px and 375 px, light and dark, into docs/screenshots/.
 *
 *   npm run screenshots
 */

import path from 'node:path';
import type { Page } from 'playwright-core';
import {
	chromiumAvailable,
	ensureBuilt,
	launchBrowser,
	signInThroughForm,
	startAppServer,
	waitForApp,
} from '../helpers/browser.ts';
import { repoRoot } from '../helpers/process.ts';

const PASSWORD = 'correct horse battery';
const OUT = path.join(repoRoot, 'docs', 'screenshots');

interface Person {
	id: string;
	name: string;
	token: string;
}

async function call(url: string, token: string | null, method: string, route: string, body?: unknown) {
	const res = await fetch(`${url}${route}`, {
		method,
		headers: {
			...(token ? { authorization: `Bearer ${token}` } : {}),
			...(body === undefined ? {} : { 'content-type': 'application/json' }),
		},
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
	return (await res.json()) as Record<string, any>;
}

async function register(url: string, name: string): Promise<Person> {
	const body = await call(url, null, 'POST', '/api/auth/register', { name, password: PASSWORD });
	return { id: body.user.id, name, token: body.accessToken };
}

async function say(page: Page, text: string): Promise<void> {
	const composer = page.getByTestId('composer');
	await composer.fill(text);
	await composer.press('Enter');
	await page
		.locator('[data-testid="message"][data-own="true"][data-status="synced"]')
		.filter({
			hasText: text
				.split('\n')[0]!
				.replace(/[*`_>]/g, '')
				.slice(0, 20),
		})
		.last()
		.waitFor({ timeout: 15_000 });
}

async function openRoom(page: Page, url: string, roomId: string): Promise<void> {
	await page.goto(`${url}/rooms/${roomId}`);
	await waitForApp(page);
	await page.getByTestId('composer').waitFor();
	await page.locator('[data-testid="connection-status"][data-status="synced"]').waitFor({ timeout: 15_000 });
}

async function main(): Promise<void> {
	if (!chromiumAvailable) throw new Error('Chromium is needed: apt-get install -y chromium');
	const server = await startAppServer(await ensureBuilt());
	const browser = await launchBrowser();
	try {
		const { url } = server;
		const [ana, ben, cleo] = await Promise.all(['ana', 'ben', 'cleo'].map((n) => register(url, n)));
		const launch = await call(url, ana!.token, 'POST', '/api/rooms', {
			name: 'Launch',
			isGroup: true,
			memberIds: [ben!.id, cleo!.id],
		});
		await call(url, ana!.token, 'PATCH', `/api/rooms/${launch.id}`, { topic: 'Release 2.4 ships Friday' });
		const direct = await call(url, ana!.token, 'POST', '/api/rooms', {
			isGroup: false,
			memberIds: [ben!.id],
		});
		await call(url, cleo!.token, 'POST', '/api/rooms', {
			name: 'Design review',
			isGroup: true,
			memberIds: [ana!.id],
		});

		const benSession = await browser.newSession();
		const benPage = await benSession.page();
		await signInThroughForm(benPage, url, 'ben', PASSWORD);
		await openRoom(benPage, url, direct.id);
		await say(benPage, 'Lunch at 12:30? The new place on Rue Cler.');

		const anaSession = await browser.newSession();
		const anaPage = await anaSession.page();
		await signInThroughForm(anaPage, url, 'ana', PASSWORD);
		await openRoom(anaPage, url, launch.id);
		await say(
			anaPage,
			'Good morning! Release **2.4** goes out today. Checklist: https://example.com/release/2.4',
		);
		await openRoom(benPage, url, launch.id);
		await say(
			benPage,
			'@ana migrations ran on staging, all green:\n```sh\nnpm run migrate  # 3 applied, 0 pending\n```',
		);
		await say(
			anaPage,
			'Thanks @ben! Before we ship:\n- smoke test the _offline_ queue\n- update the changelog',
		);
		await say(benPage, '> smoke test the offline queue\n\nOn it. Airplane mode on my phone, sending now.');

		for (const scheme of ['light', 'dark'] as const) {
			for (const [label, viewport] of [
				['desktop', { width: 1440, height: 900 }],
				['mobile', { width: 375, height: 812 }],
			] as const) {
				const suffix = `${label}${scheme === 'dark' ? '-dark' : ''}`;
				const session = await browser.newSession({ viewport, colorScheme: scheme, deviceScaleFactor: 1 });
				const page = await session.page();
				await signInThroughForm(page, url, 'ana', PASSWORD);
				await page.getByTestId('room-item').nth(2).waitFor({ timeout: 15_000 });
				await page
					.locator('[data-testid="connection-status"][data-status="synced"]')
					.waitFor({ timeout: 15_000 });
				await page.screenshot({ path: path.join(OUT, `rooms-${suffix}.png`) });
				await openRoom(page, url, launch.id);
				await page.getByTestId('message').nth(3).waitFor({ timeout: 15_000 });
				await page.waitForTimeout(500); // the last layout and the presence dots settle
				await page.screenshot({ path: path.join(OUT, `chat-${suffix}.png`) });
				await session.close();
				console.log(`docs/screenshots/{rooms,chat}-${suffix}.png`);
			}
		}
	} finally {
		await browser.close();
		await server.stop();
	}
}

await main();

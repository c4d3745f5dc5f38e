/**
 * How fast does the app show what the user came for, from the device? (Issue 18.)
 *
 * `npm run bench:client` (RUNS=10). Builds the client if needed, starts the real server on a throwaway PGlite
 * directory, registers a user in Chromium through the app and gives them two group rooms, opens each once, then
 * stops the server: everything after that is offline, so what is measured is the local-first path alone. It seeds
 * the rooms' y-indexeddb databases with one update each (10,000 and 2,000 messages, two senders, one `map.set` per
 * transaction as the app writes them) and measures, RUNS times each, interleaved, in the page's own clock:
 *   - list: a reload of / until the list is on screen (a room in the boot screen's picture, or in the app's DOM),
 *     and until the app itself shows it ("app live");
 *   - each room cold (the device has never shown it: its saved screen and its picture are deleted first) and warm
 *     (shown before): a reload of /rooms/<id> until its newest messages are on screen (the picture's: the newest
 *     down to the first it holds, at least 10, at the first contentful paint after it went in; the app's: the
 *     newest 50 in its DOM), and until the app shows them itself; warm again from a blank tab (a launch: no page
 *     of the app to unload first, as for the static baseline); and warm without the picture, to see what
 *     painting it costs the app;
 *   - switch: from one open room to the other inside the app (a link click) until the other's newest 50 are in
 *     the DOM;
 * and two baselines in the same page: a bare `Y.applyUpdate` of the 10,000-message room's stored bytes into a
 * fresh doc, and a navigation to a static page holding 50 plain messages (the browser's floor for a page of
 * messages). It prints medians, spreads and ratios, where the time went (the HTML in through the service worker,
 * the first paint) and the size of each kept picture, and writes them to bench/results/client-open.json.
 * TRACE=1 also writes Chrome traces of one warm start of the list and of the 10,000-message room.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'vite';
import * as Y from 'yjs';
import type { Page } from 'playwright-core';
import { chromiumAvailable, ensureBuilt, openBrowser, startAppServer } from '../tests/helpers/browser.ts';
import { repoRoot } from '../tests/helpers/process.ts';
import { median, post } from './common.ts';

const SIZES = [10_000, 2_000] as const;
const RUNS = Number(process.env.RUNS ?? 10);
const LAST = 50;
const PASSWORD = 'a long enough passphrase';

interface Account {
	user: { id: string; name: string };
	accessToken: string;
}

/** The room document as the app stores it: `messages` map, one key per message, written by two clients. */
function seedDocument(
	count: number,
	ownId: string,
	otherId: string,
): { update: Uint8Array; lastIds: string[] } {
	const docs = [new Y.Doc(), new Y.Doc()];
	const senders = [ownId, otherId];
	const start = Date.now() - 10 * 24 * 3600_000;
	const step = Math.floor((10 * 24 * 3600_000 - 60_000) / count);
	const ids: string[] = [];
	for (let i = 0; i < count; i++) {
		const who = i % 7 < 4 ? 0 : 1;
		const clientMsgId = randomUUID();
		ids.push(clientMsgId);
		const content = `Message ${i}: ${'lorem ipsum dolor sit amet '.repeat(1 + (i % 6))}`.trim();
		const event = {
			kind: 'message',
			clientMsgId,
			senderId: senders[who],
			content,
			createdAt: new Date(start + i * step).toISOString(),
		};
		const doc = docs[who] as Y.Doc;
		doc.transact(() => doc.getMap('messages').set(clientMsgId, event));
	}
	// Our own encodings, never a client's bytes: safe to merge (see ARCHITECTURE.md on yjs#687).
	const update = Y.mergeUpdates(docs.map((doc) => Y.encodeStateAsUpdate(doc)));
	return { update, lastIds: ids.slice(-LAST) };
}

/** Yjs as one IIFE (`window.Y`) for the page, so the baseline uses the very library the app bundles. */
async function yjsBundle(): Promise<string> {
	const dir = path.join(repoRoot, 'node_modules', '.cache', 'chat-e2e');
	fs.mkdirSync(dir, { recursive: true });
	const entry = path.join(dir, 'yjs-entry.js');
	fs.writeFileSync(entry, "export * from 'yjs';\n");
	const output = await build({
		configFile: false,
		logLevel: 'silent',
		root: dir,
		build: { write: false, lib: { entry, formats: ['iife'], name: 'Y', fileName: 'yjs' } },
	});
	const first = (Array.isArray(output) ? output[0] : output) as { output: { code?: string }[] };
	const code = first.output[0]?.code;
	if (!code) throw new Error('could not bundle yjs');
	return code;
}

/** Figures of one measurement: median, spread, and the slowest against the median (a bimodal wait shows there). */
function figures(runs: number[]) {
	const m = median(runs);
	return {
		median: m,
		min: Math.min(...runs),
		max: Math.max(...runs),
		slowestOverMedian: Math.max(...runs) / m,
		runs,
	};
}

/** Writes one Yjs update as a room's whole y-indexeddb database (its layout: `updates`, `custom`). */
async function seedRoom(page: Page, dbName: string, update: Uint8Array): Promise<void> {
	await page.evaluate(
		async ({ dbName, base64 }) => {
			const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
			const db = await new Promise<IDBDatabase>((resolve, reject) => {
				const request = indexedDB.open(dbName);
				request.onupgradeneeded = () => {
					request.result.createObjectStore('updates', { autoIncrement: true });
					request.result.createObjectStore('custom');
				};
				request.onsuccess = () => resolve(request.result);
				request.onerror = () => reject(request.error);
			});
			const tx = db.transaction('updates', 'readwrite');
			tx.objectStore('updates').clear();
			tx.objectStore('updates').add(bytes);
			await new Promise((resolve, reject) => {
				tx.oncomplete = resolve;
				tx.onerror = () => reject(tx.error);
			});
			db.close();
		},
		{ dbName, base64: Buffer.from(update).toString('base64') },
	);
}

/** Deletes the screen the app saved for a room (`RoomScreen`) and its boot picture: its next open is a cold one. */
async function forgetScreen(page: Page, metaDb: string, roomId: string): Promise<void> {
	await page.evaluate(
		async ({ metaDb, roomId }) => {
			const db = await new Promise<IDBDatabase>((resolve, reject) => {
				const request = indexedDB.open(metaDb);
				request.onsuccess = () => resolve(request.result);
				request.onerror = () => reject(request.error);
			});
			for (const key of Object.keys(localStorage))
				if (key.startsWith('chat-boot-screen:') && key.endsWith(`:/rooms/${roomId}`))
					localStorage.removeItem(key);
			if (db.objectStoreNames.contains('screens')) {
				const tx = db.transaction('screens', 'readwrite');
				tx.objectStore('screens').delete(roomId);
				await new Promise((resolve) => (tx.oncomplete = resolve));
			}
			db.close();
		},
		{ metaDb, roomId },
	);
}

/** Inside the app, follows a link to `url` and times the click until `clientMsgIds` are all in the DOM. */
function timeSwitch(page: Page, url: string, clientMsgIds: string[]): Promise<number> {
	return page.evaluate(
		({ url, ids }) =>
			new Promise<number>((resolve) => {
				const link = document.createElement('a');
				link.href = url;
				document.body.append(link);
				const started = performance.now();
				link.click();
				const check = () => {
					if (ids.every((id) => document.querySelector(`[data-client-msg-id="${id}"]`))) {
						link.remove();
						resolve(performance.now() - started);
					} else requestAnimationFrame(check);
				};
				check();
			}),
		{ url, ids: clientMsgIds },
	);
}

/** When a page was first on screen and when the app itself showed it, in the page's clock. */
interface Shown {
	/** The boot screen's picture (src/lib/client/boot-screen.ts) or the app, whichever painted it first. */
	visible: number;
	/** The app's own DOM. */
	live: number;
	/** The page's HTML in, and its first paint (zero where the page has none). */
	html: number;
	firstPaint: number;
}

/**
 * A load of `url` until `ids` (message ids, or with `rooms` any room of the list) are on screen: in the boot
 * screen's picture (its host names what it shows and when it was painted) or in the app's DOM.
 */
async function timeToShown(page: Page, url: string, ids: string[], rooms = false): Promise<Shown> {
	await page.goto(url);
	const handle = await page.waitForFunction(
		({ ids, rooms }) => {
			const w = window as unknown as {
				liveAt?: number;
				boot?: { at: number; ids: string[]; rooms: boolean };
			};
			const inApp = rooms
				? document.querySelector('[data-testid="room-item"]')
				: ids.every((id) => document.querySelector(`[data-client-msg-id="${id}"]`));
			if (inApp) w.liveAt ??= performance.now();
			if (w.liveAt === undefined) return null;
			const boot = w.boot;
			// The picture holds what was in view (and a screen above): the newest messages down to its first one,
			// a screen's worth at least; the app's DOM holds the newest 50.
			const first = boot ? ids.indexOf(boot.ids[0] ?? '') : -1;
			const inPicture = first < 0 ? ids : ids.slice(first);
			const pictured =
				boot &&
				(rooms
					? boot.rooms
					: inPicture.length >= Math.min(10, ids.length) && inPicture.every((id) => boot.ids.includes(id)));
			// Where the time before it went: the page's HTML in (through the service worker, offline), the first
			// paint.
			const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined;
			const paint = performance.getEntriesByName('first-paint')[0];
			// The picture is on screen at the first contentful paint after it went into the page (its host notes
			// the animation frame that follows, which runs before that frame is painted).
			const contentful = performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? 0;
			const pictureShown = boot ? Math.max(boot.at, contentful) : Infinity;
			return {
				visible: pictured ? Math.min(pictureShown, w.liveAt) : w.liveAt,
				live: w.liveAt,
				html: nav?.responseEnd ?? 0,
				firstPaint: paint?.startTime ?? 0,
			};
		},
		{ ids, rooms },
		{ polling: 'raf', timeout: 60_000 },
	);
	return (await handle.jsonValue()) as Shown;
}

/**
 * An init script of every page: when the boot screen's picture was painted and what it showed (its host names the
 * messages and rooms in it), kept on `window` because the app removes the picture once it shows the page itself.
 */
function watchBootScreen(): void {
	// The same start without the picture (what painting it costs the app): the warm runs "no picture" set this.
	if (sessionStorage.getItem('bench-no-picture'))
		for (const key of Object.keys(localStorage))
			if (key.startsWith('chat-boot-screen:') && key.endsWith(`:${location.pathname}`))
				localStorage.removeItem(key);
	const w = window as unknown as { boot?: { at: number; ids: string[]; rooms: boolean } };
	const observer = new MutationObserver(() => {
		const host = document.getElementById('boot-screen');
		const at = host?.getAttribute('data-painted-at');
		if (!host || !at || w.boot) return;
		w.boot = {
			at: Number(at),
			ids: (host.getAttribute('data-boot-ids') ?? '').split(' '),
			rooms: (host.getAttribute('data-boot-rooms') ?? '').trim().length > 0,
		};
		observer.disconnect();
	});
	observer.observe(document, { subtree: true, childList: true, attributes: true });
}

async function main(): Promise<void> {
	if (!chromiumAvailable) return;
	const client = await ensureBuilt();
	const server = await startAppServer(client);
	// The baseline's Yjs goes in as an inline script, which the app's Content-Security-Policy refuses.
	const session = await openBrowser({ bypassCSP: true });
	try {
		const page = await session.page();
		await page.addInitScript(watchBootScreen);
		const name = `bench_${Math.random().toString(36).slice(2, 10)}`;

		// Register through the app: it caches the profile, so it opens offline as this user.
		await page.goto(`${server.url}/register`);
		await page.fill('input[name="name"]', name);
		await page.fill('input[name="password"]', PASSWORD);
		await page.click('button[type="submit"]');
		await page.waitForURL(`${server.url}/`);
		const own = await post<Account>(server.url, '/api/auth/login', { name, password: PASSWORD });
		const other = await post<Account>(server.url, '/api/auth/register', {
			name: `bench_${Math.random().toString(36).slice(2, 10)}`,
			password: PASSWORD,
		});
		const rooms = [];
		for (const size of SIZES) {
			const room = await post<{ id: string }>(
				server.url,
				'/api/rooms',
				{ name: `${size} messages`, isGroup: true, memberIds: [other.user.id] },
				own.accessToken,
			);
			rooms.push({
				size,
				id: room.id,
				url: `${server.url}/rooms/${room.id}`,
				...seedDocument(size, own.user.id, other.user.id),
			});
		}

		// Online once: the room list is cached and the service worker installed, for the offline starts below.
		for (const room of rooms) {
			await page.goto(room.url);
			await page.locator('[data-testid="message-list"]').waitFor({ timeout: 30_000 });
		}
		await page.waitForFunction(
			async () => (await navigator.serviceWorker.getRegistration())?.active?.state === 'activated',
		);
		await page.waitForTimeout(1_000);
		await server.stop();
		await session.context.setOffline(true);
		await page.goto(`${server.url}/`);
		for (const room of rooms) await seedRoom(page, `chat-${own.user.id}-room-${room.id}`, room.update);
		const metaDb = `chat-meta-${own.user.id}`;

		const times = new Map<string, number[]>();
		const record = (key: string, ms: number) => times.set(key, [...(times.get(key) ?? []), ms]);
		const recordShown = (key: string, shown: Shown) => {
			record(key, shown.visible);
			record(`${key}, app live`, shown.live);
			record(`${key}: html in`, shown.html);
			record(`${key}: first paint`, shown.firstPaint);
		};
		const [big, small] = rooms as [(typeof rooms)[0], (typeof rooms)[0]];
		for (let run = 0; run < RUNS; run++) {
			recordShown('list', await timeToShown(page, `${server.url}/`, [], true));
			for (const room of rooms) {
				await forgetScreen(page, metaDb, room.id);
				record(`cold ${room.size}`, (await timeToShown(page, room.url, room.lastIds)).live);
				// The app saves the screen a second after showing the room; the boot screen when the page goes.
				await page.waitForTimeout(1_500);
				recordShown(`warm ${room.size}`, await timeToShown(page, room.url, room.lastIds));
				await page.waitForTimeout(1_500);
				// The same start from a blank tab (an app launched, a link opened): no page of the app goes first.
				await page.goto('about:blank');
				await page.waitForTimeout(200);
				recordShown(`warm ${room.size} from a blank tab`, await timeToShown(page, room.url, room.lastIds));
				await page.waitForTimeout(1_500);
				// The same warm start without the boot screen's picture: what painting the picture costs the app.
				await page.evaluate(() => sessionStorage.setItem('bench-no-picture', '1'));
				record(`warm ${room.size}, no picture`, (await timeToShown(page, room.url, room.lastIds)).live);
				await page.evaluate(() => sessionStorage.removeItem('bench-no-picture'));
				await page.waitForTimeout(1_500);
			}
			// Both rooms are open in the app (it keeps every listed room open): switch there and back.
			await timeToShown(page, big.url, big.lastIds);
			// Open means loaded: the app reads the other listed rooms after the first paint.
			await page.waitForTimeout(1_500);
			record('switch', await timeSwitch(page, `/rooms/${small.id}`, small.lastIds));
			record('switch', await timeSwitch(page, `/rooms/${big.id}`, big.lastIds));
			console.log(
				`run ${run + 1}/${RUNS}: ` +
					[...times].map(([key, ms]) => `${key} ${ms.at(-1)?.toFixed(0)} ms`).join(', '),
			);
		}

		// TRACE=1: a Chrome trace (chrome://tracing, or the Performance panel) of one more warm start of the list
		// and of the 10,000-message room, to see where their time goes.
		if (process.env.TRACE) {
			const browser = session.context.browser();
			for (const [name, url, ids, rooms] of [
				['list', `${server.url}/`, [], true],
				['warm-10000', big.url, big.lastIds, false],
			] as const) {
				const file = path.join(repoRoot, 'bench', 'results', `client-open-${name}.trace.json`);
				fs.mkdirSync(path.dirname(file), { recursive: true });
				await browser?.startTracing(page, { path: file });
				await timeToShown(page, url, [...ids], rooms);
				await browser?.stopTracing();
				console.log(`trace of a warm start (${name}): ${path.relative(process.cwd(), file)}`);
				await page.waitForTimeout(1_500);
			}
		}

		// What the boot screen keeps per page (its markup and the styles painted with it).
		const kept = await page.evaluate(() =>
			Object.keys(localStorage)
				.filter((key) => key.startsWith('chat-boot-screen:'))
				.map((key) => {
					const saved = JSON.parse(localStorage.getItem(key) ?? '{}') as { html?: string; css?: string };
					return {
						page: key.split(':').slice(2).join(':'),
						html: saved.html?.length,
						css: saved.css?.length,
					};
				}),
		);
		for (const { page: where, html, css } of kept)
			console.log(`boot screen kept for ${where}: ${html} characters of markup, ${css} of styles`);

		await page.addScriptTag({ content: await yjsBundle() });
		const bare: number[] = [];
		for (let run = 0; run < RUNS; run++)
			bare.push(
				await page.evaluate(async (dbName) => {
					const Yw = (window as unknown as { Y: typeof Y }).Y;
					const rows = await new Promise<Uint8Array[]>((resolve, reject) => {
						const request = indexedDB.open(dbName);
						request.onsuccess = () => {
							const get = request.result.transaction('updates').objectStore('updates').getAll();
							get.onsuccess = () => resolve(get.result as Uint8Array[]);
							get.onerror = () => reject(get.error);
						};
						request.onerror = () => reject(request.error);
					});
					const started = performance.now();
					const doc = new Yw.Doc();
					doc.transact(() => {
						for (const row of rows) Yw.applyUpdate(doc, row);
					});
					const elapsed = performance.now() - started;
					if (doc.getMap('messages').size === 0) throw new Error('the stored document is empty');
					return elapsed;
				}, `chat-${own.user.id}-room-${big.id}`),
			);

		// The browser's floor for a page of 50 messages: a static page, from memory, on another origin (no worker).
		const plain = Array.from(
			{ length: LAST },
			(_, i) => `<div class="m"><b>Ana</b> <span>Message ${i}: lorem ipsum dolor sit amet</span></div>`,
		).join('');
		await page.route('http://baseline.invalid/**', (route) =>
			route.fulfill({ contentType: 'text/html', body: `<!doctype html><html><body>${plain}</body></html>` }),
		);
		await session.context.setOffline(false);
		const paint50: number[] = [];
		for (let run = 0; run < RUNS; run++) {
			await page.goto('http://baseline.invalid/page.html');
			const handle = await page.waitForFunction(
				(n) => (document.querySelectorAll('.m').length === n ? performance.now() : null),
				LAST,
				{ polling: 'raf' },
			);
			paint50.push((await handle.jsonValue()) as number);
		}

		const result = {
			runs: RUNS,
			bootScreens: kept,
			listWarmMs: figures(times.get('list') ?? []),
			...Object.fromEntries([...times].map(([key, ms]) => [key.replace(' ', '') + 'Ms', figures(ms)])),
			bareApply10kMs: figures(bare),
			paint50PlainMs: figures(paint50),
			warm10kOverPaint50: median(times.get('warm 10000') ?? []) / median(paint50),
			warm10kFromBlankOverPaint50: median(times.get('warm 10000 from a blank tab') ?? []) / median(paint50),
			warm10kLiveOverPaint50: median(times.get('warm 10000, app live') ?? []) / median(paint50),
			cold10kOverBareApply: median(times.get('cold 10000') ?? []) / median(bare),
		};
		const line = (label: string, f: ReturnType<typeof figures>) =>
			`  ${label.padEnd(44)} ${f.median.toFixed(0).padStart(5)} ms  (${f.min.toFixed(0)}–${f.max.toFixed(0)}, slowest ${f.slowestOverMedian.toFixed(2)}× the median)`;
		console.log(
			[
				`\nmedians of ${RUNS}, offline, this machine:`,
				...[...times].map(([key, ms]) => line(key, figures(ms))),
				line(`bare Y.applyUpdate of the 10,000 (same page)`, result.bareApply10kMs),
				line(`a static page of ${LAST} plain messages`, result.paint50PlainMs),
				`  warm 10,000 / plain page: ${result.warm10kOverPaint50.toFixed(2)}× visible on a reload, ` +
					`${result.warm10kFromBlankOverPaint50.toFixed(2)}× from a blank tab, ` +
					`${result.warm10kLiveOverPaint50.toFixed(2)}× app live; cold 10,000 / bare apply: ${result.cold10kOverBareApply.toFixed(1)}×`,
			].join('\n'),
		);
		const out = path.join(repoRoot, 'bench', 'results', 'client-open.json');
		fs.mkdirSync(path.dirname(out), { recursive: true });
		fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
	} finally {
		await session.close();
		await server.stop();
	}
}

await main();

/**
 * How long does the app take to open a big room from the device? (Issue 3, criterion 7.)
 *
 * `node bench/client-open.ts` (MESSAGES=10000 RUNS=5 by default). Builds the client if needed, starts the real
 * server on a throwaway PGlite directory, registers a user in Chromium through the app and gives them a group room,
 * then stops the server: everything after that is offline, so the seeded messages never reach a server (which
 * would refuse the other member's forged items) and what is measured is the local-first open alone.
 *
 * It seeds the room's y-indexeddb database with one update holding MESSAGES messages (two senders, one `map.set`
 * per transaction, as the app writes them), then RUNS times, interleaved:
 *   - app: reloads /rooms/<id> (served by the service worker) and times navigation start → the last 50 messages
 *     are in the DOM;
 *   - bare: in the same page, `Y.applyUpdate` of the same stored bytes (read back from IndexedDB) into a fresh doc.
 * It prints the medians and their ratio, and writes them to bench/results/client-open.json.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'vite';
import * as Y from 'yjs';
import { chromiumAvailable, ensureBuilt, openBrowser, startAppServer } from '../tests/helpers/browser.ts';
import { repoRoot } from '../tests/helpers/process.ts';
import { median, post, timeToMessages } from './common.ts';

const MESSAGES = Number(process.env.MESSAGES ?? 10_000);
const RUNS = Number(process.env.RUNS ?? 5);
const LAST = 50;
const PASSWORD = 'a long enough passphrase';

interface Account {
	user: { id: string; name: string };
	accessToken: string;
}

/** The room document as the app stores it: `messages` map, one key per message, written by two clients. */
function seedDocument(ownId: string, otherId: string): { update: Uint8Array; lastIds: string[] } {
	const docs = [new Y.Doc(), new Y.Doc()];
	const senders = [ownId, otherId];
	const start = Date.now() - 10 * 24 * 3600_000;
	const step = Math.floor((10 * 24 * 3600_000 - 60_000) / MESSAGES);
	const ids: string[] = [];
	for (let i = 0; i < MESSAGES; i++) {
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

async function main(): Promise<void> {
	if (!chromiumAvailable) return;
	const client = await ensureBuilt();
	const server = await startAppServer(client);
	const session = await openBrowser();
	try {
		const page = await session.page();
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
		const room = await post<{ id: string }>(
			server.url,
			'/api/rooms',
			{ name: 'Benchmark', isGroup: true, memberIds: [other.user.id] },
			own.accessToken,
		);
		const roomUrl = `${server.url}/rooms/${room.id}`;

		// Online once: the room list is cached and the service worker installed, for the offline starts below.
		await page.goto(roomUrl);
		await page.locator('[data-testid="message-list"]').waitFor({ timeout: 30_000 });
		await page.waitForFunction(
			async () => (await navigator.serviceWorker.getRegistration())?.active?.state === 'activated',
		);
		await page.waitForTimeout(1_000);
		await server.stop();
		await session.context.setOffline(true);

		const { update, lastIds } = seedDocument(own.user.id, other.user.id);
		const dbName = `chat-${own.user.id}-room-${room.id}`;
		await page.goto(`${server.url}/`);
		await page.evaluate(
			async ({ dbName, base64 }) => {
				const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
				const db = await new Promise<IDBDatabase>((resolve, reject) => {
					// y-indexeddb's layout: `updates` (auto-increment keys, one Yjs update each) and `custom`.
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
		const yjs = await yjsBundle();

		const app: number[] = [];
		const bare: number[] = [];
		for (let run = 0; run < RUNS; run++) {
			app.push(await timeToMessages(page, roomUrl, lastIds));
			const rendered = await page.locator('[data-testid="message"]').count();
			if (rendered < LAST) throw new Error(`only ${rendered} messages rendered`);

			await page.addScriptTag({ content: yjs });
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
				}, dbName),
			);
			console.log(
				`run ${run + 1}/${RUNS}: app ${app.at(-1)?.toFixed(0)} ms, bare applyUpdate ${bare.at(-1)?.toFixed(1)} ms`,
			);
		}

		const result = {
			messages: MESSAGES,
			runs: RUNS,
			updateBytes: update.byteLength,
			appMs: { median: median(app), runs: app },
			bareApplyMs: { median: median(bare), runs: bare },
			ratio: median(app) / median(bare),
		};
		console.log(
			`\n${MESSAGES} messages (${(update.byteLength / 1024).toFixed(0)} KiB stored), median of ${RUNS}:\n` +
				`  app, navigation start → last ${LAST} messages rendered: ${result.appMs.median.toFixed(0)} ms\n` +
				`  bare Y.applyUpdate of the same bytes, same page:       ${result.bareApplyMs.median.toFixed(1)} ms\n` +
				`  ratio: ${result.ratio.toFixed(1)}×`,
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

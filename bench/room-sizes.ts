/**
 * Does opening a room cost the same at 1,000, 100,000 and 1,000,000 messages? (Issue 6, check 4.)
 *
 * `node bench/room-sizes.ts` (SIZES=1000,100000,1000000 RUNS=3 by default; Postgres at TEST_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres). It creates a throwaway database, starts the real server on it
 * (window: the default ROOM_WINDOW_MESSAGES, 5,000) and seeds one room per size the way the server leaves a long
 * room: every message as a row of the `messages` mirror, and a document snapshot holding the newest 5,000 with
 * the rest squashed into a GC run (what trimming plus compaction produce; see server/collab/trim.ts).
 *
 * Then, for each room, RUNS times in Chromium, signed in as a member:
 *   - cold: the device holds nothing of the room (its IndexedDB databases deleted) and the server has the room
 *     unloaded, so it loads it from Postgres: navigation start → the newest 50 messages are in the DOM;
 *   - warm: the same again with the device's IndexedDB copy in place.
 * It prints the medians, the ratios of each size to the smallest, and writes bench/results/room-sizes.json.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as Y from 'yjs';
import { parseConfig } from '../server/config.ts';
import { openDb, type Db } from '../server/db/index.ts';
import { migrate } from '../server/db/migrate.ts';
import { createLogger } from '../server/log.ts';
import { chromiumAvailable, ensureBuilt, openBrowser, startAppServer } from '../tests/helpers/browser.ts';
import { repoRoot } from '../tests/helpers/process.ts';
import { admin, adminUrl, median, post, timeToMessages } from './common.ts';

const SIZES = (process.env.SIZES ?? '1000,100000,1000000').split(',').map(Number);
const RUNS = Number(process.env.RUNS ?? 3);
const WINDOW = 5_000;
const LAST = 50;
const PASSWORD = 'a long enough passphrase';

interface Account {
	user: { id: string; name: string };
	accessToken: string;
}

/**
 * One room of `size` messages by `senderId`: all of them in the mirror, the newest WINDOW in the document and
 * the older ones as one GC run of the writer's client id. Returns the ids of the newest LAST messages.
 */
async function seedRoom(db: Db, roomId: string, senderId: string, size: number): Promise<string[]> {
	const base = Date.now() - size * 1_000 - 60_000;
	const older = Math.max(0, size - WINDOW);
	if (older > 0) {
		await db.query(
			`INSERT INTO messages (room_id, client_msg_id, kind, sender_id, content, created_at)
			 SELECT $1, gen_random_uuid(), 'message', $2, 'history message ' || i, $3::timestamptz + i * interval '1 second'
			 FROM generate_series(0, $4::int - 1) AS i`,
			[roomId, senderId, new Date(base).toISOString(), older],
		);
	}
	const doc = new Y.Doc();
	doc.clientID = 1_000_003;
	if (older > 0) doc.store.clients.set(doc.clientID, [new Y.GC(Y.createID(doc.clientID, 0), older)]);
	const live = [];
	for (let i = older; i < size; i++) {
		const clientMsgId = randomUUID();
		live.push({
			kind: 'message' as const,
			clientMsgId,
			senderId,
			content: `message ${i}: ${'lorem ipsum dolor sit amet '.repeat(1 + (i % 4))}`.trim(),
			createdAt: new Date(base + i * 1_000).toISOString(),
		});
	}
	const map = doc.getMap('messages');
	for (const event of live) doc.transact(() => map.set(event.clientMsgId, event));
	for (let i = 0; i < live.length; i += 1_000) {
		const slice = live.slice(i, i + 1_000);
		await db.query(
			`INSERT INTO messages (room_id, client_msg_id, kind, sender_id, content, created_at)
			 SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::timestamptz[])`,
			[
				roomId,
				slice.map((e) => e.clientMsgId),
				slice.map(() => 'message'),
				slice.map(() => senderId),
				slice.map((e) => e.content),
				slice.map((e) => e.createdAt),
			],
		);
	}
	const state = Y.encodeStateAsUpdate(doc);
	await db.query(
		`INSERT INTO documents (name, state) VALUES ($1, decode($2, 'base64'))
		 ON CONFLICT (name) DO UPDATE SET state = excluded.state`,
		[`room:${roomId}`, Buffer.from(state).toString('base64')],
	);
	console.log(
		`seeded ${size.toLocaleString('en')} messages (${(state.length / 1024).toFixed(0)} KiB document)`,
	);
	return live.slice(-LAST).map((e) => e.clientMsgId);
}

async function main(): Promise<void> {
	if (!chromiumAvailable) throw new Error('chromium is needed (apt-get install chromium)');
	const dbName = `bench_rooms_${randomUUID().slice(0, 8)}`;
	await admin(`CREATE DATABASE ${dbName}`);
	const url = new URL(adminUrl);
	url.pathname = `/${dbName}`;
	const db = await openDb(parseConfig({ DATABASE_URL: url.toString() }), createLogger('warn'));
	let server: Awaited<ReturnType<typeof startAppServer>> | undefined;
	try {
		await migrate(db);
		const client = await ensureBuilt();
		server = await startAppServer(client, { DATABASE_URL: url.toString() });
		const base = server.url;
		const writer = await post<Account>(base, '/api/auth/register', {
			name: `w_${randomUUID().slice(0, 8)}`,
			password: PASSWORD,
		});

		const results: { size: number; coldMs: number[]; warmMs: number[] }[] = [];
		for (const size of SIZES) {
			const reader = await post<Account>(base, '/api/auth/register', {
				name: `r_${randomUUID().slice(0, 8)}`,
				password: PASSWORD,
			});
			const room = await post<{ id: string }>(
				base,
				'/api/rooms',
				{ name: `${size} messages`, isGroup: true, memberIds: [reader.user.id] },
				writer.accessToken,
			);
			const lastIds = await seedRoom(db, room.id, writer.user.id, size);
			const roomUrl = `${base}/rooms/${room.id}`;

			const session = await openBrowser();
			try {
				const page = await session.page();
				await page.goto(`${base}/login`);
				await page.fill('input[name="name"]', reader.user.name);
				await page.fill('input[name="password"]', PASSWORD);
				await page.click('button[type="submit"]');
				await page.waitForURL(`${base}/`);
				const open = () => timeToMessages(page, roomUrl, lastIds);
				/** Leaves the app (the room closes; the server unloads it) and optionally forgets the device's copy. */
				const leave = async (forget: boolean) => {
					await page.goto(`${base}/favicon.svg`);
					if (forget) {
						await page.evaluate(
							async (names) => {
								for (const name of names)
									await new Promise((resolve) => {
										const request = indexedDB.deleteDatabase(name);
										request.onsuccess = request.onerror = request.onblocked = resolve;
									});
							},
							[`chat-${reader.user.id}-room-${room.id}`, `chat-meta-${reader.user.id}`],
						);
					}
					// The server stores and unloads the room once its last connection is gone.
					await page.waitForTimeout(2_000);
				};
				const coldMs: number[] = [];
				const warmMs: number[] = [];
				for (let run = 0; run < RUNS; run++) {
					await leave(true);
					coldMs.push(await open());
					await leave(false);
					warmMs.push(await open());
					console.log(
						`  ${size.toLocaleString('en')}: run ${run + 1}/${RUNS}: cold ${coldMs.at(-1)?.toFixed(0)} ms, warm ${warmMs.at(-1)?.toFixed(0)} ms`,
					);
				}
				results.push({ size, coldMs, warmMs });
			} finally {
				await session.close();
			}
		}

		const first = results[0] as (typeof results)[0];
		const summary = results.map((r) => ({
			size: r.size,
			coldMedianMs: median(r.coldMs),
			warmMedianMs: median(r.warmMs),
			coldRatio: median(r.coldMs) / median(first.coldMs),
			warmRatio: median(r.warmMs) / median(first.warmMs),
			coldMs: r.coldMs,
			warmMs: r.warmMs,
		}));
		console.log(`\nnavigation start → newest ${LAST} messages shown, median of ${RUNS} (window ${WINDOW}):`);
		for (const s of summary) {
			console.log(
				`  ${s.size.toLocaleString('en').padStart(9)} messages: cold ${s.coldMedianMs.toFixed(0)} ms (${s.coldRatio.toFixed(2)}×), ` +
					`warm ${s.warmMedianMs.toFixed(0)} ms (${s.warmRatio.toFixed(2)}×)`,
			);
		}
		const out = path.join(repoRoot, 'bench', 'results', 'room-sizes.json');
		fs.mkdirSync(path.dirname(out), { recursive: true });
		fs.writeFileSync(out, `${JSON.stringify({ window: WINDOW, runs: RUNS, results: summary }, null, 2)}\n`);
	} finally {
		await server?.stop();
		await db.close();
		await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
	}
}

await main();

/**
 * `npm run bench:cold`: the cold paths of issue 7, each against its bare baseline in the same run.
 *
 * 1. Server open of a room with 10k and 100k messages, against `Y.applyUpdate` of the same stored bytes in this
 *    process, two ways: on the server alone (the persistence extension's load, from Postgres into a fresh
 *    Y.Doc, plus the encoding of the first sync answer to a new client), and end to end (a client connects to a
 *    room that is not loaded until it has synced: WebSocket, JWT, membership, the load, the sync, the client's own
 *    apply). The rooms are stored as the server keeps them (the newest 5,000 messages live, older ones squashed;
 *    see bench/room-sizes.ts), so the 100k room stores what a 5,000 one does.
 * 2. Mirror throughput: MIRROR_ROWS (50,000) rows through the server's mirror (`messages.mirror`, the durable
 *    append's statement, in batches of 200 as the durable log's group commit makes them) against Postgres `COPY`
 *    of the same rows.
 * 3. Document bytes per message against the JSON size of the messages.
 *
 * OPEN_RUNS (default 7) and RUNS (default 3, the mirror) alternating repetitions; medians. Writes
 * bench/results/cold-paths.json and a markdown table.
 * `--smoke`: small rooms and one run, to check the harness.
 */
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import * as Y from 'yjs';
import { TokenService } from '../server/auth/tokens.ts';
import { parseConfig } from '../server/config.ts';
import * as messages from '../server/data/messages.ts';
import { openDb } from '../server/db/index.ts';
import { migrate } from '../server/db/migrate.ts';
import { createLogger } from '../server/log.ts';
import type { MessageEvent } from '../src/lib/protocol/events.ts';
import { connect } from '../tests/helpers/collab.ts';
import { freePort, repoRoot, spawnServer } from '../tests/helpers/process.ts';
import { DurableLog } from '../server/collab/durable-log.ts';
import { LiveRooms } from '../server/collab/live-rooms.ts';
import { RoomLoader } from '../server/collab/room-loader.ts';
import { RoomWindow } from '../server/collab/room-window.ts';
import { admin, adminUrl, median } from './common.ts';
import { envNumber, fmt, writeResult } from './harness.ts';

const smoke = process.argv.includes('--smoke');
const RUNS = envNumber('RUNS', smoke ? 1 : 3);
/** Opening a room is quick, and noisier than the mirror: more runs. */
const OPEN_RUNS = envNumber('OPEN_RUNS', smoke ? 1 : 7);
const WINDOW = smoke ? 50 : 5_000;
const SIZES = smoke ? [100, 1_000] : [10_000, 100_000];
const MIRROR_ROWS = envNumber('MIRROR_ROWS', smoke ? 1_000 : 50_000);
const JWT_SECRET = 'bench-secret-0123456789-abcdefghijklmnop';

function events(count: number, senderId: string): MessageEvent[] {
	const base = Date.now() - count * 1_000;
	return Array.from({ length: count }, (_, i) => ({
		kind: 'message' as const,
		clientMsgId: randomUUID(),
		senderId,
		content: `message ${i}: ${'lorem ipsum dolor sit amet '.repeat(1 + (i % 4))}`.trim(),
		createdAt: new Date(base + i * 1_000).toISOString(),
	}));
}

/** The stored form of a room of `size` messages: the newest WINDOW live, the older ones one GC run. */
function storedRoom(size: number, senderId: string): { state: Uint8Array; live: MessageEvent[] } {
	const doc = new Y.Doc();
	doc.clientID = 1_000_003;
	const older = Math.max(0, size - WINDOW);
	if (older > 0) doc.store.clients.set(doc.clientID, [new Y.GC(Y.createID(doc.clientID, 0), older)]);
	const live = events(size - older, senderId);
	const map = doc.getMap('messages');
	for (const e of live) doc.transact(() => map.set(e.clientMsgId, e));
	return { state: Y.encodeStateAsUpdate(doc), live };
}

async function main() {
	const dbName = `bench_cold_${randomUUID().slice(0, 8)}`;
	await admin(`CREATE DATABASE ${dbName}`);
	const url = new URL(adminUrl);
	url.pathname = `/${dbName}`;
	const config = parseConfig({ DATABASE_URL: url.toString(), JWT_SECRET });
	const db = await openDb(config, createLogger('warn'));
	const port = await freePort();
	const server = spawnServer({
		PORT: String(port),
		DATABASE_URL: url.toString(),
		JWT_SECRET,
		DATA_DIR: path.join(repoRoot, 'node_modules', '.cache', `bench-${dbName}`),
	});
	try {
		await migrate(db);
		const userId = randomUUID();
		await db.query("INSERT INTO users (id, name, password_hash) VALUES ($1, 'bench_cold', 'x')", [userId]);
		const token = await new TokenService(config).signAccess({ userId, name: 'bench_cold' });
		await server.ready;
		const wsUrl = `ws://127.0.0.1:${port}/collab`;

		// 1. Server open against Y.applyUpdate.
		const open: Record<
			string,
			{ loadMs: number[]; firstSyncMs: number[]; endToEndMs: number[]; applyMs: number[]; bytes: number }
		> = {};
		// What Hocuspocus awaits before a room opens: its load, then its window.
		const benchLog = createLogger('warn');
		const liveRooms = new LiveRooms();
		const loader = new RoomLoader(db, benchLog, liveRooms);
		const roomWindow = new RoomWindow(new DurableLog(db, benchLog), benchLog, liveRooms, WINDOW);
		for (const size of SIZES) {
			const roomId = randomUUID();
			await db.query("INSERT INTO rooms (id, name, is_group, created_by) VALUES ($1, 'cold', true, $2)", [
				roomId,
				userId,
			]);
			await db.query("INSERT INTO memberships (room_id, user_id, role) VALUES ($1, $2, 'member')", [
				roomId,
				userId,
			]);
			const { state, live } = storedRoom(size, userId);
			await db.query("INSERT INTO documents (name, state) VALUES ($1, decode($2, 'base64'))", [
				`room:${roomId}`,
				Buffer.from(state).toString('base64'),
			]);
			const endToEndMs: number[] = [];
			const applyMs: number[] = [];
			const loadMs: number[] = [];
			const firstSyncMs: number[] = [];
			for (let run = 0; run < OPEN_RUNS; run++) {
				// The server alone: what Hocuspocus awaits before a room opens, then the first sync answer.
				const serverDoc = new Y.Doc();
				let t = performance.now();
				const loading = { document: serverDoc, documentName: `room:${roomId}` } as never;
				await loader.onLoadDocument(loading);
				await roomWindow.onLoadDocument(loading);
				loadMs.push(performance.now() - t);
				t = performance.now();
				Y.encodeStateAsUpdate(serverDoc, Y.encodeStateVector(new Y.Doc()));
				firstSyncMs.push(performance.now() - t);
				await loader.afterUnloadDocument({ documentName: `room:${roomId}` });
				serverDoc.destroy();

				const t0 = performance.now();
				const client = connect(wsUrl, roomId, token, userId);
				// Timed by events, not by polling: the provider's sync and the document's updates.
				await new Promise<void>((resolve) => {
					const check = () => {
						if (client.provider.isSynced && client.messages().length === live.length) resolve();
					};
					client.provider.on('synced', check);
					client.doc.on('update', check);
				});
				endToEndMs.push(performance.now() - t0);
				client.destroy();
				const t1 = performance.now();
				const doc = new Y.Doc();
				Y.applyUpdate(doc, state);
				applyMs.push(performance.now() - t1);
				doc.destroy();
				// The room unloads once its last connection is gone (store, compaction): the next open is cold again.
				await new Promise((r) => setTimeout(r, 1_500));
			}
			open[size] = { loadMs, firstSyncMs, endToEndMs, applyMs, bytes: state.length };
			console.log(
				`open ${size.toLocaleString('en')}: server load ${median(loadMs).toFixed(1)} ms + first sync ${median(firstSyncMs).toFixed(1)} ms, ` +
					`end to end ${median(endToEndMs).toFixed(1)} ms, applyUpdate ${median(applyMs).toFixed(1)} ms`,
			);
		}

		// 2. Mirror against COPY.
		const roomId = randomUUID();
		await db.query("INSERT INTO rooms (id, name, is_group, created_by) VALUES ($1, 'mirror', true, $2)", [
			roomId,
			userId,
		]);
		const mirrorRps: number[] = [];
		const copyRps: number[] = [];
		const pool = new pg.Pool({ connectionString: url.toString(), max: 1 });
		for (let run = 0; run < RUNS; run++) {
			const rows = events(MIRROR_ROWS, userId);
			await db.query('DELETE FROM messages WHERE room_id = $1', [roomId]);
			let t = performance.now();
			for (let i = 0; i < rows.length; i += 200) {
				const batch = rows.slice(i, i + 200).map((event) => ({ roomId, event }));
				await messages.mirror(db, batch);
			}
			mirrorRps.push(rows.length / ((performance.now() - t) / 1_000));
			await db.query('DELETE FROM messages WHERE room_id = $1', [roomId]);
			const client = await pool.connect();
			t = performance.now();
			try {
				const csv = rows.map(
					(e) => `${roomId}\t${e.clientMsgId}\tmessage\t${e.senderId}\t${e.content}\t${e.createdAt}\n`,
				);
				await pipeline(
					Readable.from(csv),
					client.query(
						copyFrom(
							'COPY messages (room_id, client_msg_id, kind, sender_id, content, created_at) FROM STDIN',
						),
					),
				);
			} finally {
				client.release();
			}
			copyRps.push(rows.length / ((performance.now() - t) / 1_000));
			console.log(
				`mirror run ${run + 1}/${RUNS}: ${mirrorRps.at(-1)?.toFixed(0)} rows/s, COPY ${copyRps.at(-1)?.toFixed(0)} rows/s`,
			);
		}
		await pool.end();

		// 3. Bytes per message.
		const sample = events(10_000, userId);
		const doc = new Y.Doc();
		for (const e of sample) doc.transact(() => doc.getMap('messages').set(e.clientMsgId, e));
		const docBytes = Y.encodeStateAsUpdate(doc).length / sample.length;
		const jsonBytes = sample.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0) / sample.length;

		const result = {
			runs: RUNS,
			open: Object.fromEntries(
				Object.entries(open).map(([size, o]) => [
					size,
					{
						storedBytes: o.bytes,
						loadMedianMs: median(o.loadMs),
						firstSyncMedianMs: median(o.firstSyncMs),
						serverMedianMs: median(o.loadMs.map((l, i) => l + (o.firstSyncMs[i] as number))),
						endToEndMedianMs: median(o.endToEndMs),
						applyUpdateMedianMs: median(o.applyMs),
						serverRatio: median(o.loadMs.map((l, i) => l + (o.firstSyncMs[i] as number))) / median(o.applyMs),
						endToEndRatio: median(o.endToEndMs) / median(o.applyMs),
					},
				]),
			),
			mirror: {
				rows: MIRROR_ROWS,
				mirrorRowsPerSecond: median(mirrorRps),
				copyRowsPerSecond: median(copyRps),
				ratio: median(mirrorRps) / median(copyRps),
			},
			bytesPerMessage: { document: docBytes, json: jsonBytes, ratio: docBytes / jsonBytes },
		};
		const rows = Object.entries(result.open).flatMap(([size, o]) => [
			`| Open a ${Number(size).toLocaleString('en')}-message room on the server: load from Postgres + first sync answer | ${fmt(o.loadMedianMs)} + ${fmt(o.firstSyncMedianMs)} = ${fmt(o.serverMedianMs)} ms | \`Y.applyUpdate\` of its ${fmt(o.storedBytes / 1e6, 2)} MB: ${fmt(o.applyUpdateMedianMs)} ms | ${fmt(o.serverRatio, 2)}× |`,
			`| The same, end to end: connect → synced (room not loaded) | ${fmt(o.endToEndMedianMs)} ms | ${fmt(o.applyUpdateMedianMs)} ms | ${fmt(o.endToEndRatio, 2)}× |`,
		]);
		const table = [
			`Medians of ${OPEN_RUNS} runs (opening) and ${RUNS} (mirror):`,
			'',
			'| Path | Ours | Baseline | Ratio |',
			'| --- | --- | --- | --- |',
			...rows,
			`| Mirror ${MIRROR_ROWS.toLocaleString('en')} rows (\`messages.mirror\`, batches of 200) | ${fmt(result.mirror.mirrorRowsPerSecond, 0)} rows/s | Postgres \`COPY\`: ${fmt(result.mirror.copyRowsPerSecond, 0)} rows/s | ${fmt(result.mirror.ratio, 2)}× |`,
			`| Document bytes per message (10,000 messages) | ${fmt(docBytes, 0)} B | the message as JSON: ${fmt(jsonBytes, 0)} B | ${fmt(docBytes / jsonBytes, 2)}× |`,
		].join('\n');
		console.log(`\n${table}`);
		writeResult(smoke ? 'cold-paths-smoke' : 'cold-paths', { smoke, ...result, table });
	} finally {
		server.proc.kill('SIGTERM');
		await server.exited;
		await db.close();
		await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
	}
}

await main();
process.exit(0);

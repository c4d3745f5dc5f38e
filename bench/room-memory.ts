/**
 * `npm run bench:room-memory` (part of `npm run bench`): RSS per loaded 1,000-message room (issue 7, goal 3),
 * bare Hocuspocus against our server, in one run.
 *
 * ROOMS rooms, one connected client each (a room stays loaded while a client is in it). RSS is read after a full
 * GC with every client connected to its empty room, then again after each client wrote MESSAGES messages (in
 * transactions of 100) and the server confirmed them; the difference over ROOMS is the memory of one loaded room
 * of MESSAGES messages. Repeated RUNS times (fresh processes); medians.
 */
import { median } from './common.ts';
import {
	connectAll,
	envNumber,
	fmt,
	parseTargets,
	sleep,
	startTarget,
	writeResult,
	type DocClient,
	type Target,
} from './harness.ts';

const smoke = process.argv.includes('--smoke');
const ROOMS = envNumber('ROOMS', smoke ? 3 : 50);
const MESSAGES = envNumber('MESSAGES', smoke ? 100 : 1_000);
const RUNS = envNumber('RUNS', smoke ? 1 : 3);
const TARGETS = parseTargets(process.env.TARGETS ?? 'bare,ours');

async function once(target: Target): Promise<{ rssKb: number; heapKb: number }> {
	const running = await startTarget(target, { clients: ROOMS, rooms: ROOMS });
	let clients: DocClient[] = [];
	try {
		clients = await connectAll(running, ROOMS);
		await sleep(500);
		const emptyHeap = (await running.gc()).heapUsedMb;
		const empty = running.stats().rssMb;
		for (const c of clients) {
			const map = c.doc.getMap('messages');
			for (let t = 0; t < MESSAGES / 100; t++) {
				c.doc.transact(() => {
					for (let i = 0; i < 100; i++) {
						const clientMsgId = crypto.randomUUID();
						map.set(clientMsgId, {
							kind: 'message',
							clientMsgId,
							senderId: c.userId,
							content: `message ${t * 100 + i}: ${'lorem ipsum dolor sit amet '.repeat(1 + (i % 4))}`.trim(),
							createdAt: new Date().toISOString(),
						});
					}
				});
			}
		}
		const deadline = Date.now() + 120_000;
		while (clients.some((c) => c.unsynced())) {
			if (Date.now() > deadline) throw new Error(`${target}: the server never confirmed the messages`);
			await sleep(100);
		}
		// Past the store debounce (2 s), so what a store keeps or frees is in the figure.
		await sleep(smoke ? 500 : 3_000);
		const heap = (await running.gc()).heapUsedMb;
		return {
			rssKb: ((running.stats().rssMb - empty) * 1024) / ROOMS,
			heapKb: ((heap - emptyHeap) * 1024) / ROOMS,
		};
	} finally {
		for (const c of clients) c.destroy();
		await running.stop();
	}
}

const results: { target: Target; kbPerRoom: number; runs: number[]; heapKbPerRoom: number }[] = [];
const runs = new Map<Target, { rssKb: number; heapKb: number }[]>(TARGETS.map((t) => [t, []]));
for (let run = 0; run < RUNS; run++) {
	for (const target of TARGETS) {
		const r = await once(target);
		runs.get(target)?.push(r);
		console.log(
			`${target} run ${run + 1}/${RUNS}: ${fmt(r.rssKb, 0)} KB RSS, ${fmt(r.heapKb, 0)} KB heap per loaded ${MESSAGES}-message room`,
		);
	}
}
for (const [target, values] of runs)
	results.push({
		target,
		kbPerRoom: median(values.map((v) => v.rssKb)),
		runs: values.map((v) => v.rssKb),
		heapKbPerRoom: median(values.map((v) => v.heapKb)),
	});
const bare = results.find((r) => r.target === 'bare');
const table = [
	`${ROOMS} rooms of ${MESSAGES} messages, one client each; after a full GC; medians of ${RUNS}:`,
	'',
	`| Target | RSS KB per loaded room | ×bare | runs (KB) | heap KB per loaded room | ×bare |`,
	'| --- | --- | --- | --- | --- | --- |',
	...results.map(
		(r) =>
			`| ${r.target} | ${fmt(r.kbPerRoom, 0)} | ${bare ? fmt(r.kbPerRoom / bare.kbPerRoom, 2) : '–'} | ${r.runs.map((v) => fmt(v, 0)).join(', ')} | ${fmt(r.heapKbPerRoom, 0)} | ${bare ? fmt(r.heapKbPerRoom / bare.heapKbPerRoom, 2) : '–'} |`,
	),
].join('\n');
console.log(`\n${table}`);
writeResult(smoke ? 'room-memory-smoke' : 'room-memory', {
	smoke,
	rooms: ROOMS,
	messages: MESSAGES,
	results,
	table,
});
process.exit(0);

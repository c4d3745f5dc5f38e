/**
 * `npm run bench:soak` (part of `npm run bench`): our server at the goal-1 load for SOAK_S seconds (issue 7,
 * goal 6). Every 10 s it reads the server's RSS; every minute it runs a full GC in the server and reads RSS again
 * (the live memory, without garbage waiting to be collected), and the minute's p99 latency. After warm-up
 * (WARMUP_MIN minutes) it fits a line through the after-GC figures: a leak shows as a slope. At the end it checks
 * that nothing went wrong: no warning or error in the server's log, every message delivered to every member,
 * and every message a row in Postgres.
 *
 * The rooms run at their window (ROOM_WINDOW_MESSAGES=WINDOW, 100 by default): a soak measures a steady state,
 * and a room that only grows is not one (at this load each room gets one message a second; at a window of 100 it
 * trims from its 150th on, so after about 2.5 minutes every room holds 100–150 live messages). The server's own
 * trimming and the clients' handling of it run all the time.
 */
import pg from 'pg';
import { envNumber, Fleet, fmt, percentile, startTarget, writeResult } from './harness.ts';

const smoke = process.argv.includes('--smoke');
const CLIENTS = envNumber('CLIENTS', smoke ? 12 : 1_000);
const ROOMS = envNumber('ROOMS', smoke ? 3 : 100);
const INTERVAL_MS = envNumber('INTERVAL_MS', smoke ? 500 : 10_000);
const SOAK_S = envNumber('SOAK_S', smoke ? 6 : 600);
const MINUTE_S = smoke ? 2 : 60;
const WARMUP_MIN = envNumber('WARMUP_MIN', smoke ? 1 : 3);
const WINDOW = envNumber('WINDOW', 100);

const running = await startTarget('ours', {
	clients: CLIENTS,
	rooms: ROOMS,
	env: { ROOM_WINDOW_MESSAGES: String(WINDOW) },
});
let load: Fleet | undefined;
const minutes: {
	minute: number;
	deliveriesPerSecond: number;
	p99Ms: number;
	rssMb: number[];
	rssAfterGcMb: number;
	heapAfterGcMb: number;
	loopDelayMaxMs: number;
	/** The load generator processes' worst event-loop delay in the minute: latency it adds, not the server. */
	generatorLoopDelayMaxMs: number;
	/** Cores busy on average over the minute: the server, the load generator (its processes), the machine. */
	serverCores: number;
	generatorCores: number;
	machineCores: number;
}[] = [];
let problems: string[];
let undelivered: number;
let sent: number;
let rows: number;
try {
	load = await Fleet.connect(running, CLIENTS, smoke ? { spreadMs: 100, generators: 2 } : {});
	load.start(INTERVAL_MS);
	const started = Date.now();
	for (let minute = 1; minute * MINUTE_S <= SOAK_S; minute++) {
		const samples: number[] = [];
		const latencies: number[] = [];
		let deliveries = 0;
		let seconds = 0;
		const cpu = { server: 0, generator: 0, machine: 0 };
		let generatorLoopDelayMaxMs = 0;
		for (let s = 0; s < MINUTE_S / (smoke ? 1 : 10); s++) {
			const w = await load.measure(smoke ? 1 : 10);
			samples.push(w.rssMb);
			latencies.push(...w.latencies);
			deliveries += w.deliveries;
			seconds += w.seconds;
			cpu.server += w.serverCpuMs;
			cpu.generator += w.generatorCpuMs;
			cpu.machine += w.machineCpuMs;
			generatorLoopDelayMaxMs = Math.max(generatorLoopDelayMaxMs, w.generatorLoopDelayMaxMs);
		}
		const gc = await running.gc();
		const rssAfterGcMb = running.stats().rssMb;
		latencies.sort((a, b) => a - b);
		minutes.push({
			minute,
			deliveriesPerSecond: deliveries / seconds,
			p99Ms: percentile(latencies, 99),
			rssMb: samples,
			rssAfterGcMb,
			heapAfterGcMb: gc.heapUsedMb,
			loopDelayMaxMs: gc.loopDelayMaxMs,
			generatorLoopDelayMaxMs,
			serverCores: cpu.server / 1_000 / seconds,
			generatorCores: cpu.generator / 1_000 / seconds,
			machineCores: cpu.machine / 1_000 / seconds,
		});
		console.log(
			`minute ${minute} (${Math.round((Date.now() - started) / 1000)} s): ${fmt(deliveries / seconds, 0)} deliveries/s, ` +
				`p99 ${fmt(percentile(latencies, 99))} ms, event-loop delay max: server ${fmt(gc.loopDelayMaxMs)} ms, generator ${fmt(generatorLoopDelayMaxMs)} ms, RSS ${fmt(Math.max(...samples), 0)} MB, after GC ${fmt(rssAfterGcMb, 0)} MB (heap ${fmt(gc.heapUsedMb)} MB)`,
		);
	}
	load.stop();
	await load.settle(smoke ? 500 : 2_000);
	({ sent, missing: undelivered } = await load.counts());
	problems = running.problems();
	const db = new pg.Client({ connectionString: running.databaseUrl });
	await db.connect();
	rows = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM messages')).rows[0]?.n);
	await db.end();
} finally {
	await load?.close();
	await running.stop();
}

// Least squares through the after-GC figures of the minutes after warm-up: MB per minute.
const steady = minutes.filter((m) => m.minute > WARMUP_MIN);
const n = steady.length;
function trend(value: (m: (typeof minutes)[number]) => number): { slope: number; mean: number } {
	const mx = steady.reduce((a, m) => a + m.minute, 0) / n;
	const my = steady.reduce((a, m) => a + value(m), 0) / n;
	const slope =
		steady.reduce((a, m) => a + (m.minute - mx) * (value(m) - my), 0) /
		steady.reduce((a, m) => a + (m.minute - mx) ** 2, 0);
	return { slope, mean: my };
}
const rss = trend((m) => m.rssAfterGcMb);
const heap = trend((m) => m.heapAfterGcMb);
const result = {
	smoke,
	clients: CLIENTS,
	rooms: ROOMS,
	intervalMs: INTERVAL_MS,
	soakS: SOAK_S,
	window: WINDOW,
	warmupMinutes: WARMUP_MIN,
	minutes,
	rssTrend: rss,
	heapTrend: heap,
	sent,
	rows,
	undelivered,
	problems: problems.slice(0, 50),
};
const table = [
	`${CLIENTS} clients in ${ROOMS} rooms, one message per client every ${INTERVAL_MS / 1000} s, ${SOAK_S} s, window ${WINDOW}:`,
	'',
	'| Minute | deliveries/s | p99 ms | event-loop delay max, server / generator ms | cores: server / generator / machine | RSS MB (max of 10 s samples) | RSS after GC, MB | heap after GC, MB |',
	'| --- | --- | --- | --- | --- | --- | --- | --- |',
	...minutes.map(
		(m) =>
			`| ${m.minute}${m.minute <= WARMUP_MIN ? ' (warm-up)' : ''} | ${fmt(m.deliveriesPerSecond, 0)} | ${fmt(m.p99Ms)} | ${fmt(m.loopDelayMaxMs)} / ${fmt(m.generatorLoopDelayMaxMs)} | ${fmt(m.serverCores, 2)} / ${fmt(m.generatorCores, 2)} / ${fmt(m.machineCores, 2)} | ${fmt(Math.max(...m.rssMb), 0)} | ${fmt(m.rssAfterGcMb, 0)} | ${fmt(m.heapAfterGcMb, 1)} |`,
	),
	'',
	`After warm-up (${n} minutes): RSS after GC ${fmt(rss.mean, 0)} MB on average, trend ${fmt(rss.slope, 2)} MB per minute; ` +
		`heap after GC ${fmt(heap.mean, 1)} MB, trend ${fmt(heap.slope, 2)} MB per minute. ${fmt(sent, 0)} messages sent, ` +
		`${fmt(rows, 0)} rows in Postgres, ${undelivered} not delivered to every member, ${problems.length} warnings or errors ` +
		`in the server log.`,
].join('\n');
console.log(`\n${table}`);
writeResult(smoke ? 'soak-smoke' : 'soak', { ...result, table });
const failed = rows !== sent || undelivered > 0 || problems.length > 0;
if (failed) console.error(`soak: FAILED (${problems.slice(0, 5).join('\n')})`);
process.exit(failed ? 1 : 0);

/**
 * The soak (issue 7, goal 6): our server at the goal-1 load for 10 minutes, run by `bench/load.ts --soak` as the
 * continuation of its `ours` target (`npm run bench:soak` runs only that target). The load's first minute holds
 * the goal-1 windows of the load table.
 *
 * Every 10 s it reads the server's RSS; at the end of every minute it runs a full GC in the server and reads RSS
 * again (the live memory, without garbage waiting to be collected), the heap in use, the minute's p99 latency and
 * the worst event-loop delay of the server and of the load generator. After warm-up (WARMUP_MIN minutes) it fits
 * a line through the after-GC figures: a leak shows as a slope. At the end it checks that nothing went wrong: no
 * warning or error in the server's log, every message delivered to every member, and every message a row in
 * Postgres.
 *
 * The rooms run at their window (ROOM_WINDOW_MESSAGES=100 by default): a soak measures a steady state, and a room
 * that only grows is not one (at this load each room gets one message a second; at a window of 100 it trims from
 * its 150th on, so after about 2.5 minutes every room holds 100–150 live messages, well after the goal-1 windows).
 * The server's own trimming and the clients' handling of it run all the time.
 */
import pg from 'pg';
import { envNumber, fmt, percentile, type Fleet, type RunningTarget, type Window } from './harness.ts';

export interface SoakMinute {
	minute: number;
	deliveriesPerSecond: number;
	p99Ms: number;
	rssMb: number[];
	rssAfterGcMb: number;
	heapAfterGcMb: number;
	/** What V8 holds for the heap after the GC, used or not, and the external memory (Buffers): see the table. */
	heapTotalMb: number;
	externalMb: number;
	loopDelayMaxMs: number;
	/** The load generator's worst event-loop delay in the minute: latency it adds, not the server. */
	generatorLoopDelayMaxMs: number;
	/** The load generator's longest garbage-collection pause in the minute. */
	generatorGcMaxMs: number;
	/** Cores busy on average over the minute: the server, the load generator's processes, the machine. */
	serverCores: number;
	generatorCores: number;
	machineCores: number;
}

export interface SoakResult {
	seconds: number;
	roomWindow: number;
	warmupMinutes: number;
	minutes: SoakMinute[];
	rssTrend: { slope: number; mean: number };
	heapTrend: { slope: number; mean: number };
	sent: number;
	rows: number;
	undelivered: number;
	problems: string[];
	failed: boolean;
}

/**
 * Goes on with `load` against `running` until `seconds` after `startedAt` (performance.now() when the load
 * started). `windows` are what was measured since: they count in the first minute.
 */
export async function soak(
	running: RunningTarget,
	load: Fleet,
	options: { seconds: number; startedAt: number; windows: Window[]; smoke: boolean; roomWindow: number },
): Promise<SoakResult> {
	const { seconds, startedAt, smoke } = options;
	const minuteS = smoke ? 2 : 60;
	const sampleS = smoke ? 1 : 10;
	const warmupMinutes = envNumber('WARMUP_MIN', smoke ? 1 : 2);
	const minutes: SoakMinute[] = [];
	let carried = options.windows;
	const started = Date.now();
	for (let minute = 1; minute * minuteS <= seconds; minute++) {
		const windows = carried;
		carried = [];
		for (;;) {
			const left = startedAt + minute * minuteS * 1_000 - performance.now();
			if (left < 500) break;
			windows.push(await load.measure(Math.min(sampleS, left / 1_000)));
		}
		const gc = await running.gc();
		const rssAfterGcMb = running.stats().rssMb;
		const latencies = windows.flatMap((w) => w.latencies).sort((a, b) => a - b);
		const sum = (f: (w: Window) => number) => windows.reduce((a, w) => a + f(w), 0);
		const measured = sum((w) => w.seconds);
		const m: SoakMinute = {
			minute,
			deliveriesPerSecond: sum((w) => w.deliveries) / measured,
			p99Ms: percentile(latencies, 99),
			rssMb: windows.map((w) => w.rssMb),
			rssAfterGcMb,
			heapAfterGcMb: gc.heapUsedMb,
			heapTotalMb: gc.heapTotalMb,
			externalMb: gc.externalMb,
			loopDelayMaxMs: gc.loopDelayMaxMs,
			generatorLoopDelayMaxMs: Math.max(...windows.map((w) => w.generatorLoopDelayMaxMs)),
			generatorGcMaxMs: Math.max(...windows.map((w) => w.generatorGcMaxMs)),
			serverCores: sum((w) => w.serverCpuMs) / 1_000 / measured,
			generatorCores: sum((w) => w.generatorCpuMs) / 1_000 / measured,
			machineCores: sum((w) => w.machineCpuMs) / 1_000 / measured,
		};
		minutes.push(m);
		console.log(
			`minute ${minute} (${Math.round((Date.now() - started) / 1000)} s): ${fmt(m.deliveriesPerSecond, 0)} deliveries/s, ` +
				`p99 ${fmt(m.p99Ms)} ms, event-loop delay max: server ${fmt(m.loopDelayMaxMs)} ms, generator ${fmt(m.generatorLoopDelayMaxMs)} ms (GC ${fmt(m.generatorGcMaxMs)} ms), ` +
				`RSS ${fmt(Math.max(...m.rssMb), 0)} MB, after GC ${fmt(rssAfterGcMb, 0)} MB (heap ${fmt(gc.heapUsedMb)} of ${fmt(gc.heapTotalMb)} MB, external ${fmt(gc.externalMb)} MB)`,
		);
	}
	load.stop();
	await load.settle(smoke ? 500 : 2_000);
	const { sent, missing } = await load.counts();
	const problems = running.problems();
	const db = new pg.Client({ connectionString: running.databaseUrl });
	await db.connect();
	const rows = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM messages')).rows[0]?.n);
	await db.end();

	// Least squares through the after-GC figures of the minutes after warm-up: MB per minute.
	const steady = minutes.filter((m) => m.minute > warmupMinutes);
	const trend = (value: (m: SoakMinute) => number) => {
		const n = steady.length;
		const mx = steady.reduce((a, m) => a + m.minute, 0) / n;
		const my = steady.reduce((a, m) => a + value(m), 0) / n;
		const slope =
			steady.reduce((a, m) => a + (m.minute - mx) * (value(m) - my), 0) /
			steady.reduce((a, m) => a + (m.minute - mx) ** 2, 0);
		return { slope, mean: my };
	};
	return {
		seconds,
		roomWindow: options.roomWindow,
		warmupMinutes,
		minutes,
		rssTrend: trend((m) => m.rssAfterGcMb),
		heapTrend: trend((m) => m.heapAfterGcMb),
		sent,
		rows,
		undelivered: missing,
		problems: problems.slice(0, 50),
		failed: rows !== sent || missing !== 0 || problems.length > 0,
	};
}

export function soakTable(r: SoakResult): string {
	const steadyMinutes = r.minutes.filter((m) => m.minute > r.warmupMinutes).length;
	return [
		`Our server at the goal-1 load for ${r.seconds} s, rooms at a window of ${r.roomWindow} messages:`,
		'',
		'| Minute | deliveries/s | p99 ms | event-loop delay max, server / generator ms (generator GC pause) | cores: server / generator / machine | RSS MB (max of 10 s samples) | RSS after GC, MB | heap after GC: used / held by V8, MB | external MB |',
		'| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
		...r.minutes.map(
			(m) =>
				`| ${m.minute}${m.minute <= r.warmupMinutes ? ' (warm-up)' : ''} | ${fmt(m.deliveriesPerSecond, 0)} | ${fmt(m.p99Ms)} | ${fmt(m.loopDelayMaxMs)} / ${fmt(m.generatorLoopDelayMaxMs)} (${fmt(m.generatorGcMaxMs)}) | ${fmt(m.serverCores, 2)} / ${fmt(m.generatorCores, 2)} / ${fmt(m.machineCores, 2)} | ${fmt(Math.max(...m.rssMb), 0)} | ${fmt(m.rssAfterGcMb, 0)} | ${fmt(m.heapAfterGcMb, 1)} / ${fmt(m.heapTotalMb, 0)} | ${fmt(m.externalMb, 1)} |`,
		),
		'',
		`After warm-up (${steadyMinutes} minutes): RSS after GC ${fmt(r.rssTrend.mean, 0)} MB on average, trend ${fmt(r.rssTrend.slope, 2)} MB per minute; ` +
			`heap after GC ${fmt(r.heapTrend.mean, 1)} MB, trend ${fmt(r.heapTrend.slope, 2)} MB per minute. ${fmt(r.sent, 0)} messages sent, ` +
			`${fmt(r.rows, 0)} rows in Postgres, ${r.undelivered} deliveries missing, ${r.problems.length} warnings or errors ` +
			`in the server log.`,
	].join('\n');
}

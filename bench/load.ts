/**
 * `npm run bench:load` (and the first part of `npm run bench`): the same load against every target in one run,
 * side by side (issue 7, goals 1 and 3). Targets and clients: bench/harness.ts.
 *
 * Every client writes one message every INTERVAL_MS (random phase). After all clients synced it reads RSS per
 * idle connection (after a full GC, against the RSS before any connection); after WARMUP_S of load it measures,
 * for DURATION_S, the latency from the writer's local write to each other member's observation (p50, p95, p99),
 * deliveries per second, the server's CPU per delivery, its RSS, and how busy the load generator was.
 *
 * Defaults are the goal-1 load (1,000 clients in 100 rooms, one message per client every 10 s); `--smoke` runs a
 * tiny load in seconds, to check the harness (CI does, and asserts nothing about timing). Results go to
 * bench/results/load.json (load-smoke.json) and a markdown table on stdout.
 */
import {
	envNumber,
	Fleet,
	fmt,
	parseTargets,
	sleep,
	startTarget,
	summarize,
	writeResult,
	type Target,
} from './harness.ts';

const smoke = process.argv.includes('--smoke');
const CLIENTS = envNumber('CLIENTS', smoke ? 12 : 1_000);
const ROOMS = envNumber('ROOMS', smoke ? 3 : 100);
const INTERVAL_MS = envNumber('INTERVAL_MS', smoke ? 500 : 10_000);
const WARMUP_S = envNumber('WARMUP_S', smoke ? 0.3 : 5);
const DURATION_S = envNumber('DURATION_S', smoke ? 1 : 30);
const TARGETS = parseTargets(process.env.TARGETS ?? 'bare,yws,ours,ours-relay-first,bare-2node,ours-2node');

async function run(target: Target) {
	const running = await startTarget(target, { clients: CLIENTS, rooms: ROOMS });
	let load: Fleet | undefined;
	try {
		const baseHeap = await running.gc();
		const base = running.stats();
		load = await Fleet.connect(running, CLIENTS, smoke ? { spreadMs: 100, generators: 2 } : {});
		await sleep(smoke ? 200 : 1_000);
		const idleHeap = await running.gc();
		const idle = running.stats();
		load.start(INTERVAL_MS);
		await sleep(WARMUP_S * 1_000);
		await running.gc(); // resets the event-loop delay histograms: what the next call reports is the window's
		const window = await load.measure(DURATION_S);
		const loop = await running.gc();
		load.stop();
		return {
			target,
			...summarize(window),
			rssPerIdleConnectionKb: ((idle.rssMb - base.rssMb) * 1024) / CLIENTS,
			heapPerIdleConnectionKb: ((idleHeap.heapUsedMb - baseHeap.heapUsedMb) * 1024) / CLIENTS,
			loopDelayP99Ms: loop.loopDelayP99Ms,
			loopDelayMaxMs: loop.loopDelayMaxMs,
			problems: running.problems().slice(0, 20),
		};
	} finally {
		await load?.close();
		await running.stop();
	}
}

const results = [];
for (const target of TARGETS) {
	const r = await run(target);
	results.push(r);
	console.log(`${target}: ${JSON.stringify(r)}`);
}
const bare = results.find((r) => r.target === 'bare');
const lines = [
	`${CLIENTS} clients in ${ROOMS} rooms, one message per client every ${INTERVAL_MS / 1000} s, ${DURATION_S} s measured after ${WARMUP_S} s:`,
	'',
	'| Target | deliveries/s | p50 ms | p95 ms | p99 ms | p99 ×bare | server event-loop delay p99 / max ms | server CPU µs/delivery | server RSS MB | RSS KB/idle connection | ×bare | heap KB/idle connection |',
	'| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
	...results.map(
		(r) =>
			`| ${r.target} | ${fmt(r.deliveriesPerSecond, 0)} | ${fmt(r.p50Ms)} | ${fmt(r.p95Ms)} | ${fmt(r.p99Ms)} | ${bare ? fmt(r.p99Ms / bare.p99Ms, 2) : '–'} | ${fmt(r.loopDelayP99Ms)} / ${fmt(r.loopDelayMaxMs)} | ${fmt(r.serverCpuPerDeliveryUs, 0)} | ${fmt(r.rssMb, 0)} | ${fmt(r.rssPerIdleConnectionKb, 0)} | ${bare ? fmt(r.rssPerIdleConnectionKb / bare.rssPerIdleConnectionKb, 2) : '–'} | ${fmt(r.heapPerIdleConnectionKb, 0)} |`,
	),
];
const table = lines.join('\n');
console.log(`\n${table}`);
writeResult(smoke ? 'load-smoke' : 'load', {
	smoke,
	clients: CLIENTS,
	rooms: ROOMS,
	intervalMs: INTERVAL_MS,
	warmupS: WARMUP_S,
	durationS: DURATION_S,
	results,
	table,
});
process.exit(0);

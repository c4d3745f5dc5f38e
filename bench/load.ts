/**
 * `npm run bench:load` (and the first suite of `npm run bench`): the same load against every target in one run,
 * side by side (issue 7, goals 1 and 3); with `--soak`, our server's run goes on for SOAK_S seconds (goal 6,
 * bench/soak.ts). Targets and clients: bench/harness.ts.
 *
 * Every client writes one message every INTERVAL_MS (random phase). After all clients synced it reads RSS per
 * idle connection (after a full GC, against the RSS before any connection); after WARMUP_S of load it measures
 * WINDOWS windows of WINDOW_S each: the latency from the writer's local write to each other member's observation
 * (p50, p95, p99; the table gives each one's median over the windows, and the spread of p99), deliveries per
 * second, the server's CPU per delivery and its RSS.
 *
 * Defaults are the goal-1 load (1,000 clients in 100 rooms, one message per client every 10 s); `--smoke` runs a
 * tiny load in seconds, to check the harness (CI does, and asserts nothing about timing). Results go to
 * bench/results/load.json (load-smoke.json), and soak.json with `--soak`, plus markdown tables on stdout.
 */
import { median } from './common.ts';
import {
	envNumber,
	Fleet,
	fmt,
	parseTargets,
	pinning,
	sleep,
	startTarget,
	summarize,
	writeResult,
	type Target,
	type Window,
} from './harness.ts';
import { soak, soakTable, type SoakResult } from './soak.ts';

const smoke = process.argv.includes('--smoke');
const withSoak = process.argv.includes('--soak');
const CLIENTS = envNumber('CLIENTS', smoke ? 12 : 1_000);
const ROOMS = envNumber('ROOMS', smoke ? 3 : 100);
const INTERVAL_MS = envNumber('INTERVAL_MS', smoke ? 500 : 10_000);
const WARMUP_S = envNumber('WARMUP_S', smoke ? 0.3 : 3);
const WINDOWS = envNumber('WINDOWS', 3);
const WINDOW_S = envNumber('WINDOW_S', smoke ? 0.5 : 5);
const SOAK_S = envNumber('SOAK_S', smoke ? 6 : 600);
const REPEATS = envNumber('REPEATS', 1);
/** The soak's rooms keep this many messages (ROOM_WINDOW_MESSAGES): see bench/soak.ts. */
const ROOM_WINDOW = envNumber('ROOM_WINDOW', 100);
const TARGETS = parseTargets(process.env.TARGETS ?? 'bare,yws,seed,ours,bare-2node,ours-2node');

async function run(
	target: Target,
	repetition: number,
): Promise<{ result: ReturnType<typeof figures>; soak?: SoakResult }> {
	const soaking = withSoak && target === 'ours' && repetition === 0;
	const running = await startTarget(target, {
		clients: CLIENTS,
		rooms: ROOMS,
		env: soaking ? { ROOM_WINDOW_MESSAGES: String(ROOM_WINDOW) } : {},
	});
	let load: Fleet | undefined;
	try {
		const baseHeap = await running.gc();
		const base = running.stats();
		load = await Fleet.connect(running, CLIENTS, smoke ? { spreadMs: 100, generators: 2 } : {});
		await sleep(smoke ? 200 : 1_000);
		const idleHeap = await running.gc();
		const idle = running.stats();
		load.start(INTERVAL_MS);
		const loadStarted = performance.now();
		await sleep(WARMUP_S * 1_000);
		await running.pinDatabase();
		await running.gc(); // resets the event-loop delay histograms: what the next call reports is the windows'
		// The forced collection stops the server for as long as its heap takes (ours: 80 ms, bare's less): the
		// messages it held up are delivered before the first window starts, not counted in it (as bench:capacity).
		await sleep(smoke ? 50 : 1_000);
		const windows: Window[] = [];
		await running.profile('start');
		for (let i = 0; i < WINDOWS; i++) windows.push(await load.measure(WINDOW_S));
		const profiles = await running.profile('stop');
		const loop = await running.gc();
		const result = figures(target, windows, {
			rssPerIdleConnectionKb: ((idle.rssMb - base.rssMb) * 1024) / CLIENTS,
			heapPerIdleConnectionKb: ((idleHeap.heapUsedMb - baseHeap.heapUsedMb) * 1024) / CLIENTS,
			loopDelayP99Ms: loop.loopDelayP99Ms,
			loopDelayMaxMs: loop.loopDelayMaxMs,
			gcMaxMs: loop.gcMaxMs,
			heapAfterMb: loop.heapUsedMb,
			deliveries: windows.reduce((a, w) => a + w.deliveries, 0),
			profiles,
			problems: running.problems().slice(0, 20),
			repetitions: 1,
		});
		console.log(`${target}: ${JSON.stringify(result)}`);
		if (!soaking) return { result };
		return {
			result,
			soak: await soak(running, load, {
				seconds: SOAK_S,
				startedAt: loadStarted,
				windows,
				smoke,
				roomWindow: ROOM_WINDOW,
			}),
		};
	} finally {
		await load?.close();
		await running.stop();
	}
}

/** One target's row: the median over its windows of each figure, and the spread of p99. */
function figures(target: Target, windows: Window[], extra: Record<string, unknown>) {
	const each = windows.map(summarize);
	const mid = (f: (s: ReturnType<typeof summarize>) => number) => median(each.map(f));
	return {
		target,
		windows: each.length,
		windowSeconds: WINDOW_S,
		deliveriesPerSecond: mid((s) => s.deliveriesPerSecond),
		p50Ms: mid((s) => s.p50Ms),
		p95Ms: mid((s) => s.p95Ms),
		p99Ms: mid((s) => s.p99Ms),
		p99RangeMs: [Math.min(...each.map((s) => s.p99Ms)), Math.max(...each.map((s) => s.p99Ms))],
		serverCpuPerDeliveryUs: mid((s) => s.serverCpuPerDeliveryUs),
		serverCores: mid((s) => s.serverCores),
		generatorCores: mid((s) => s.generatorCores),
		machineCores: mid((s) => s.machineCores),
		generatorLoopDelayMaxMs: Math.max(...windows.map((w) => w.generatorLoopDelayMaxMs)),
		rssMb: mid((s) => s.rssMb),
		...(extra as {
			rssPerIdleConnectionKb: number;
			heapPerIdleConnectionKb: number;
			loopDelayP99Ms: number;
			loopDelayMaxMs: number;
			gcMaxMs: number;
			heapAfterMb: number;
			deliveries: number;
			profiles: string[];
			problems: string[];
			repetitions: number;
		}),
	};
}

const pinnedNote = pinning ? '; each server on core 0, the load generator on the others' : '';
type Row = ReturnType<typeof figures>;

/**
 * One row per target from its repetitions: the median of each figure (the soak runs in the first only). With one
 * repetition, that repetition's row.
 */
function medianRow(rows: Row[]): Row {
	const first = rows[0] as Row;
	if (rows.length === 1) return first;
	const mid = (f: (r: Row) => number) => median(rows.map(f));
	return {
		...first,
		deliveriesPerSecond: mid((r) => r.deliveriesPerSecond),
		p50Ms: mid((r) => r.p50Ms),
		p95Ms: mid((r) => r.p95Ms),
		p99Ms: mid((r) => r.p99Ms),
		p99RangeMs: [
			Math.min(...rows.map((r) => r.p99RangeMs[0] as number)),
			Math.max(...rows.map((r) => r.p99RangeMs[1] as number)),
		],
		serverCpuPerDeliveryUs: mid((r) => r.serverCpuPerDeliveryUs),
		serverCores: mid((r) => r.serverCores),
		generatorCores: mid((r) => r.generatorCores),
		machineCores: mid((r) => r.machineCores),
		generatorLoopDelayMaxMs: Math.max(...rows.map((r) => r.generatorLoopDelayMaxMs)),
		rssMb: mid((r) => r.rssMb),
		rssPerIdleConnectionKb: mid((r) => r.rssPerIdleConnectionKb),
		heapPerIdleConnectionKb: mid((r) => r.heapPerIdleConnectionKb),
		loopDelayP99Ms: mid((r) => r.loopDelayP99Ms),
		loopDelayMaxMs: mid((r) => r.loopDelayMaxMs),
		gcMaxMs: mid((r) => r.gcMaxMs),
		heapAfterMb: mid((r) => r.heapAfterMb),
		deliveries: rows.reduce((a, r) => a + r.deliveries, 0),
		profiles: rows.flatMap((r) => r.profiles),
		problems: rows.flatMap((r) => r.problems).slice(0, 20),
		repetitions: rows.length,
	};
}

// REPEATS=n runs the whole list of targets n times, alternating (bare, seed, ours, bare, seed, ours, …), so a
// noisy minute of the shared machine weighs on every target alike; each row is then the median of its repetitions.
const each: Row[] = [];
let soakResult: SoakResult | undefined;
for (let rep = 0; rep < REPEATS; rep++) {
	for (const target of TARGETS) {
		const r = await run(target, rep);
		each.push(r.result);
		soakResult ??= r.soak;
	}
}
const results = TARGETS.map((target) => medianRow(each.filter((r) => r.target === target)));
const bare = results.find((r) => r.target === 'bare');
const seed = results.find((r) => r.target === 'seed');
/** `value` against the same figure of `base` ("1.23×"), or a dash without that baseline in the run. */
const ratio = (value: number, base: number | undefined) =>
	base === undefined ? '–' : `${fmt(value / base, 2)}×`;
const lines = [
	`${CLIENTS} clients in ${ROOMS} rooms, one message per client every ${INTERVAL_MS / 1000} s; after ${WARMUP_S} s, ${WINDOWS} windows of ${WINDOW_S} s (medians over the windows${REPEATS > 1 ? ` and over ${REPEATS} alternating repetitions` : ''})${pinnedNote}:`,
	'',
	'| Target | deliveries/s | p50 ms | ×bare | ×seed | p95 ms | p99 ms (range) | ×bare | ×seed | server event-loop delay p99 / max ms | longest GC pause ms |',
	'| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
	...results.map(
		(r) =>
			`| ${r.target} | ${fmt(r.deliveriesPerSecond, 0)} | ${fmt(r.p50Ms)} | ${ratio(r.p50Ms, bare?.p50Ms)} | ${ratio(r.p50Ms, seed?.p50Ms)} | ${fmt(r.p95Ms)} | ${fmt(r.p99Ms)} (${fmt(r.p99RangeMs[0] as number)}–${fmt(r.p99RangeMs[1] as number)}) | ${ratio(r.p99Ms, bare?.p99Ms)} | ${ratio(r.p99Ms, seed?.p99Ms)} | ${fmt(r.loopDelayP99Ms)} / ${fmt(r.loopDelayMaxMs)} | ${fmt(r.gcMaxMs)} |`,
	),
	'',
	'| Target | server CPU µs/delivery | ×bare | ×seed | cores: server / generator / machine | server RSS MB | RSS KB/idle connection | ×bare | ×seed | heap KB/idle connection |',
	'| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
	...results.map(
		(r) =>
			`| ${r.target} | ${fmt(r.serverCpuPerDeliveryUs, 0)} | ${ratio(r.serverCpuPerDeliveryUs, bare?.serverCpuPerDeliveryUs)} | ${ratio(r.serverCpuPerDeliveryUs, seed?.serverCpuPerDeliveryUs)} | ${fmt(r.serverCores, 2)} / ${fmt(r.generatorCores, 2)} / ${fmt(r.machineCores, 2)} | ${fmt(r.rssMb, 0)} | ${fmt(r.rssPerIdleConnectionKb, 0)} | ${ratio(r.rssPerIdleConnectionKb, bare?.rssPerIdleConnectionKb)} | ${ratio(r.rssPerIdleConnectionKb, seed?.rssPerIdleConnectionKb)} | ${fmt(r.heapPerIdleConnectionKb, 0)} |`,
	),
];
const ours = results.find((r) => r.target === 'ours');
const variant = results.find((r) => r.target === 'ours-b');
if (ours && variant)
	lines.push(
		'',
		`ours-b (OURS_B_ENV=${process.env.OURS_B_ENV ?? ''} OURS_B_NODE_FLAGS=${process.env.OURS_B_NODE_FLAGS ?? '(as ours)'}) against ours: p50 ${ratio(variant.p50Ms, ours.p50Ms)}, p99 ${ratio(variant.p99Ms, ours.p99Ms)}, server CPU per delivery ${ratio(variant.serverCpuPerDeliveryUs, ours.serverCpuPerDeliveryUs)}, RSS ${ratio(variant.rssMb, ours.rssMb)}`,
	);
const table = lines.join('\n');
console.log(`\n${table}`);
// Each repetition's profiles with its own deliveries (a row of `results` sums its repetitions').
const profiled = each.filter((r) => r.profiles.length > 0);
if (profiled.length > 0)
	console.log(
		`\nProfiles of the windows, per delivery:\nnpm run bench:profile -- ${profiled.map((r) => r.profiles.join(' ')).join(' ')} --per=${profiled.flatMap((r) => r.profiles.map(() => r.deliveries)).join(',')}`,
	);
writeResult(smoke ? 'load-smoke' : 'load', {
	smoke,
	clients: CLIENTS,
	rooms: ROOMS,
	intervalMs: INTERVAL_MS,
	warmupS: WARMUP_S,
	windows: WINDOWS,
	windowS: WINDOW_S,
	repeats: REPEATS,
	each,
	results,
	table,
});
let failed = false;
if (withSoak) {
	if (!soakResult) throw new Error('--soak needs the target ours');
	const soakTableText = soakTable(soakResult);
	console.log(`\n${soakTableText}`);
	writeResult(smoke ? 'soak-smoke' : 'soak', { ...soakResult, table: soakTableText });
	failed = soakResult.failed;
	if (failed) console.error(`soak: FAILED (${soakResult.problems.slice(0, 5).join('\n')})`);
}
process.exit(failed ? 1 : 0);

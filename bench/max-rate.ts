/**
 * `npm run bench:max-rate` (part of `npm run bench`): the highest delivery rate at which p99 latency stays under
 * 250 ms (issue 7, goal 2), for bare Hocuspocus, the seed's design and our server, in one run.
 *
 * CLIENTS clients in ROOMS rooms (the goal-1 shape). The rate goes up in steps of ×1.5 from START deliveries/s;
 * each step runs STEP_S seconds (4) after 1.5 s of warm-up, then waits for the backlog to drain. A step passes when p99
 * is under 250 ms and at least 90 % of the offered deliveries arrived in the window. After the first failure one
 * more step halfway between the last pass and the failure narrows it. The limit column says what ran out at the
 * failing steps: the server (its one event loop at a full core), or the machine (both cores busy: the server, the
 * load generator's processes and Postgres share them).
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
const START = envNumber('START', smoke ? 50 : 4_500);
const STEP_S = envNumber('STEP_S', smoke ? 1 : 4);
const WARMUP_S = smoke ? 0.5 : 1.5;
const MAX_STEPS = envNumber('MAX_STEPS', smoke ? 1 : 8);
const P99_LIMIT_MS = 250;
const TARGETS = parseTargets(process.env.TARGETS ?? 'bare,seed,ours');

async function run(target: Target) {
	const running = await startTarget(target, { clients: CLIENTS, rooms: ROOMS });
	let load: Fleet | undefined;
	const steps: (ReturnType<typeof summarize> & { offered: number; pass: boolean })[] = [];
	try {
		const fleet = await Fleet.connect(running, CLIENTS, smoke ? { spreadMs: 100, generators: 2 } : {});
		load = fleet;
		const deliveriesPerMessage = CLIENTS / ROOMS - 1;
		const step = async (offered: number) => {
			// Each client sends every `interval` ms: CLIENTS / interval messages per ms, each delivered to the others.
			const interval = (CLIENTS * deliveriesPerMessage * 1_000) / offered;
			fleet.start(interval);
			await sleep(WARMUP_S * 1_000);
			await running.pinDatabase();
			const s = summarize(await fleet.measure(STEP_S));
			fleet.stop();
			await fleet.settle();
			const pass = s.p99Ms < P99_LIMIT_MS && s.deliveriesPerSecond >= 0.9 * offered;
			steps.push({ offered, pass, ...s });
			console.log(
				`${target} ${fmt(offered, 0)}/s offered: ${fmt(s.deliveriesPerSecond, 0)}/s, p99 ${fmt(s.p99Ms)} ms, ` +
					`cores: server ${fmt(s.serverCores, 2)}, generator ${fmt(s.generatorCores, 2)}, machine ${fmt(s.machineCores, 2)} of 2: ${pass ? 'pass' : 'fail'}`,
			);
			return pass;
		};
		let rate = START;
		let lastPass = 0;
		for (let i = 0; i < MAX_STEPS; i++) {
			if (!(await step(rate))) {
				if (lastPass > 0 && (await step(Math.round((lastPass + rate) / 2))))
					lastPass = Math.round((lastPass + rate) / 2);
				break;
			}
			lastPass = rate;
			rate = Math.round(rate * 1.5);
		}
		const best = steps.filter((s) => s.pass).sort((a, b) => b.deliveriesPerSecond - a.deliveriesPerSecond)[0];
		return {
			target,
			maxDeliveriesPerSecond: best?.deliveriesPerSecond ?? 0,
			p99AtMaxMs: best?.p99Ms ?? NaN,
			serverBound: steps.some((s) => !s.pass && s.serverCores > 0.9),
			machineBound: steps.some((s) => !s.pass && s.machineCores > 1.8),
			reachedLastStep: steps.length >= MAX_STEPS && steps.every((s) => s.pass),
			steps,
			problems: running.problems().slice(0, 20),
		};
	} finally {
		await load?.close();
		await running.stop();
	}
}

const results = [];
for (const target of TARGETS) results.push(await run(target));
const bare = results.find((r) => r.target === 'bare');
const seed = results.find((r) => r.target === 'seed');
const table = [
	`${CLIENTS} clients in ${ROOMS} rooms; steps of ${STEP_S} s; highest rate with p99 under ${P99_LIMIT_MS} ms:`,
	'',
	'| Target | max deliveries/s | ×bare | ×seed | p99 there, ms | steps (offered/s → p99 ms) | limit |',
	'| --- | --- | --- | --- | --- | --- | --- |',
	...results.map(
		(r) =>
			`| ${r.target} | ${fmt(r.maxDeliveriesPerSecond, 0)} | ${bare ? fmt(r.maxDeliveriesPerSecond / bare.maxDeliveriesPerSecond, 2) : '–'} | ${seed ? fmt(r.maxDeliveriesPerSecond / seed.maxDeliveriesPerSecond, 2) : '–'} | ${fmt(r.p99AtMaxMs)} | ${r.steps.map((s) => `${fmt(s.offered, 0)} → ${fmt(s.p99Ms, 0)}`).join(', ')} | ${r.reachedLastStep ? 'not reached' : r.serverBound ? 'server (a full core)' : r.machineBound ? 'machine (2 cores busy)' : 'neither: latency'} |`,
	),
].join('\n');
console.log(`\n${table}`);
writeResult(smoke ? 'max-rate-smoke' : 'max-rate', {
	smoke,
	clients: CLIENTS,
	rooms: ROOMS,
	stepS: STEP_S,
	results,
	table,
});
process.exit(0);

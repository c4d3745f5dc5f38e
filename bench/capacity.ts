/**
 * `npm run bench:capacity` (issue 21): how many concurrent users one server core carries, the figure operators ask
 * for, for bare Hocuspocus, the seed's design and ours, in one run. The server runs on one core (bench/harness.ts
 * pins it), the load generator on the other.
 *
 * Users are added in steps (START_USERS, then STEP_USERS more each step, up to MAX_USERS), in rooms of
 * ROOM_MEMBERS, each with the mix of bench/capacity-generator.ts: a message a minute (typed for 1.5 s first),
 * presence renewed every 15 s (PRESENCE_MS; 0 leaves the renewals out), read positions reported at most every 10 s
 * (ours; READ_MS), the user channel open beside the room (ours, as every signed-in web client has it;
 * USER_CHANNELS=0 leaves it out; CHANNEL_PRESENCE=1 renews its own presence too, as the web client does while no
 * live room is on screen), and the room opened again after 10 minutes on
 * average (a reconnect: login and the room's content fetched again). After each step's users connected and WARMUP_S passed,
 * a window of WINDOW_S measures the latency of every delivery (from the writer's send to another member's receipt)
 * and counts errors: a user who could not connect or was disconnected, a message not acknowledged within 10 s.
 * The run of a target ends at the first step whose p99 passes 250 ms or that has an error; its capacity is the
 * last step that passed, reported per core (the server has one) and per GB of the server's RSS there. Each step
 * reports how busy the generator's cores were: a failing step at 95 % or more says its clients were saturated, so
 * that the server's limit is not read from the clients' queueing.
 *
 * `--smoke` runs two tiny steps per target, to check the harness (CI does; it asserts nothing about capacity).
 * Results: bench/results/capacity.json (capacity-smoke.json) and a markdown table on stdout.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PROTOCOL_VERSION } from '../src/lib/protocol/version.ts';
import { repoRoot } from '../tests/helpers/process.ts';
import type { FromCapacityGenerator, Mix, ToCapacityGenerator } from './capacity-generator.ts';
import { databaseCounters } from './common.ts';
import {
	clientSpec,
	envNumber,
	fmt,
	listenOverflows,
	generatorCoresBusyMs,
	machineBusyMs,
	postgresBusyMs,
	parseTargets,
	percentile,
	pin,
	pinning,
	sleep,
	startTarget,
	writeResult,
	type RunningTarget,
	type Target,
} from './harness.ts';

const smoke = process.argv.includes('--smoke');
const TARGETS = parseTargets(process.env.TARGETS ?? 'bare,seed,ours');
const START_USERS = envNumber('START_USERS', smoke ? 20 : 2_000);
const STEP_USERS = envNumber('STEP_USERS', smoke ? 20 : 2_000);
const MAX_USERS = envNumber('MAX_USERS', smoke ? 40 : 16_000);
const ROOM_MEMBERS = envNumber('ROOM_MEMBERS', 10);
const WARMUP_S = envNumber('WARMUP_S', smoke ? 1 : 10);
const WINDOW_S = envNumber('WINDOW_S', smoke ? 2 : 20);
const GENERATORS = envNumber('GENERATORS', smoke ? 2 : 4);
/** Users connect at this rate (per second) when a step adds them. */
const CONNECTS_PER_S = envNumber('CONNECTS_PER_S', smoke ? 100 : 400);
const P99_LIMIT_MS = 250;
/**
 * A step's generator cores this busy (of 1) or more were saturated: its clients measured their own queueing too. A
 * failing step still ends the target's run, but its verdict says so: the server's limit was not read there.
 */
const GENERATOR_SATURATED = 0.95;

/** What a failing step's verdict adds when the generator's cores were saturated. */
function saturation(s: Step): string {
	return s.generatorCoreBusy >= GENERATOR_SATURATED
		? ` (the generator's cores ${fmt(s.generatorCoreBusy * 100, 0)} % busy: its clients' own queueing is in that p99, not the server's limit alone)`
		: '';
}
const mix: Mix = {
	messageMs: envNumber('MESSAGE_MS', smoke ? 1_000 : 60_000),
	typingMs: smoke ? 100 : 1_500,
	// PRESENCE_MS=0 leaves out the renewals (to see what presence costs; the seed's design has none).
	presenceMs: process.env.PRESENCE_MS === '0' ? 0 : envNumber('PRESENCE_MS', 15_000),
	readMs: envNumber('READ_MS', 10_000),
	reopenMeanMs: envNumber('REOPEN_MEAN_MS', smoke ? 3_000 : 600_000),
	ackTimeoutMs: 10_000,
	// USER_CHANNELS=0 leaves out the user channel that every signed-in web client opens (to compare).
	userChannels: process.env.USER_CHANNELS !== '0',
	// CHANNEL_PRESENCE=1 renews the channel's own presence too: the web client's heartbeat while no live room is on
	// screen (thin-client.ts). The users of the mix have their room on screen, where the web client rests it.
	channelPresence: process.env.CHANNEL_PRESENCE === '1',
	// CLIENT_PROTOCOL=4 has users speak as clients of 4 did (their channel gets whole rooms, not `room-activity`).
	clientProtocol: envNumber('CLIENT_PROTOCOL', PROTOCOL_VERSION),
};

interface Step {
	users: number;
	connectFailures: number;
	/**
	 * The step's connect burst: how long until every user synced, connections that failed meanwhile (refused or
	 * closed, earlier users' reconnects too), kernel queue overflows.
	 */
	burst: { syncedS: number; spreadS: number; failures: number; overflows: number };
	deliveriesPerSecond: number;
	messagesPerSecond: number;
	reopenedPerSecond: number;
	/** Messages on the user channels per second, by type (ours). */
	channelPerSecond: Record<string, number>;
	p50Ms: number;
	p99Ms: number;
	errors: string[];
	serverCores: number;
	generatorCores: number;
	/** The whole machine's busy cores (of 2): the server's, the generator's, Postgres's. */
	machineCores: number;
	/** Postgres's processes' cores (the cluster's: every database's backends, its writers and autovacuum). */
	postgresCores: number;
	/**
	 * The share of the generator's cores in use (0–1): the generator's processes, Postgres's and whatever else ran
	 * there. Near 1, the clients' own queueing is in the latencies they measure: not a reading of the server.
	 */
	generatorCoreBusy: number;
	generatorLoopDelayMaxMs: number;
	/** The server's event-loop delay in the window, and its longest GC pause. */
	serverLoopDelayP99Ms: number;
	serverLoopDelayMaxMs: number;
	serverGcMaxMs: number;
	rssMb: number;
	/** Postgres in the window, per second (the seed's design and ours): the database's, and the cluster's WAL. */
	database?: { commits: number; walKb: number; fullPages: number; walSyncs: number };
	/** With CPU_PROF: the server's profiles of this step's window. */
	profiles: string[];
	pass: boolean;
}

/** The generator processes, each pinned to the generator's cores. */
function generators(): ChildProcess[] {
	return Array.from({ length: GENERATORS }, () => {
		const worker = fork(path.join(repoRoot, 'bench', 'capacity-generator.ts'), [], {
			cwd: repoRoot,
			serialization: 'advanced',
			stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
		});
		pin(worker.pid as number, 'generator');
		return worker;
	});
}

function next<T extends FromCapacityGenerator['type']>(
	worker: ChildProcess,
	type: T,
	timeoutMs: number,
): Promise<Extract<FromCapacityGenerator, { type: T }>> {
	return new Promise((resolve, reject) => {
		const timer = setTimeout(
			() => done(new Error(`capacity generator: no ${type} in ${timeoutMs} ms`)),
			timeoutMs,
		);
		const onMessage = (m: FromCapacityGenerator) => {
			if (m.type === type) done(null, m as Extract<FromCapacityGenerator, { type: T }>);
		};
		const onExit = (code: number | null) => done(new Error(`capacity generator exited (${code})`));
		const done = (error: Error | null, m?: Extract<FromCapacityGenerator, { type: T }>) => {
			clearTimeout(timer);
			worker.off('message', onMessage);
			worker.off('exit', onExit);
			if (error) reject(error);
			else resolve(m as Extract<FromCapacityGenerator, { type: T }>);
		};
		worker.on('message', onMessage);
		worker.on('exit', onExit);
	});
}

/** Adds users `from … to-1` (spread over the generators) and measures one window. */
async function step(
	running: RunningTarget,
	workers: ChildProcess[],
	from: number,
	to: number,
): Promise<Step> {
	const spreadMs = ((to - from) / CONNECTS_PER_S) * 1_000;
	const overflows0 = listenOverflows();
	const added = await Promise.all(
		workers.map((w, g) => {
			const answer = next(w, 'added', spreadMs + 120_000);
			const users = [];
			for (let i = from + g; i < to; i += workers.length) users.push(clientSpec(running, i));
			w.send({ type: 'add', users, spreadMs } satisfies ToCapacityGenerator);
			return answer;
		}),
	);
	const overflows = listenOverflows() - overflows0;
	await sleep(WARMUP_S * 1_000);
	const windows = workers.map((w) => next(w, 'window', WINDOW_S * 1_000 + 60_000));
	await running.pinDatabase();
	// Resets the server's event-loop histogram and longest GC pause; the window starts once the backlog of the
	// collection it forces has drained.
	await running.gc();
	await sleep(2_000);
	await running.profile('start');
	// What the window's figures divide by its length is read at its edges: not the forced collection and the
	// wait before it, nor a profiler's writing after it (PERF_PROF's inject and script take seconds of CPU).
	const database0 = running.databaseName ? await databaseCounters(running.databaseName) : undefined;
	const before = running.stats();
	const machine0 = machineBusyMs();
	const postgres0 = postgresBusyMs();
	const generator0 = generatorCoresBusyMs();
	const t0 = performance.now();
	for (const w of workers) w.send({ type: 'begin' } satisfies ToCapacityGenerator);
	await sleep(WINDOW_S * 1_000);
	for (const w of workers) w.send({ type: 'end' } satisfies ToCapacityGenerator);
	const seconds = (performance.now() - t0) / 1_000;
	const after = running.stats();
	const machineCores = (machineBusyMs() - machine0) / 1_000 / seconds;
	const postgresCores = (postgresBusyMs() - postgres0) / 1_000 / seconds;
	const generator1 = generatorCoresBusyMs();
	const generatorCoreBusy = (generator1.busyMs - generator0.busyMs) / 1_000 / seconds / generator1.cores;
	const database1 = running.databaseName ? await databaseCounters(running.databaseName) : undefined;
	const profiles = await running.profile('stop');
	const loop = await running.gc();
	const parts = await Promise.all(windows);
	const latencies = parts.flatMap((p) => [...p.latencies]).sort((a, b) => a - b);
	const connectFailures = added.reduce((a, p) => a + p.failed, 0);
	const errors = [
		...(connectFailures > 0
			? [
					`${connectFailures} users did not connect within a minute (${stuckOf(added)}; listen queue overflows ${overflows})`,
				]
			: []),
		...parts.flatMap((p) => p.errors),
	];
	const p99Ms = percentile(latencies, 99);
	return {
		users: to,
		connectFailures,
		burst: {
			syncedS: Math.max(...added.map((a) => a.syncedAfterMs)) / 1_000,
			spreadS: spreadMs / 1_000,
			failures: added.reduce((n, a) => n + Object.values(a.failures).reduce((x, y) => x + y, 0), 0),
			overflows,
		},
		deliveriesPerSecond: latencies.length / seconds,
		messagesPerSecond: parts.reduce((a, p) => a + p.sent, 0) / seconds,
		reopenedPerSecond: parts.reduce((a, p) => a + p.reopened, 0) / seconds,
		channelPerSecond: perSecond(
			parts.map((p) => p.channel),
			seconds,
		),
		p50Ms: percentile(latencies, 50),
		p99Ms,
		errors: errors.slice(0, 20),
		serverCores: (after.cpuMs - before.cpuMs) / 1_000 / seconds,
		generatorCores: parts.reduce((a, p) => a + p.cpuMs, 0) / 1_000 / seconds,
		machineCores,
		postgresCores,
		generatorCoreBusy,
		generatorLoopDelayMaxMs: Math.max(...parts.map((p) => p.loopDelayMaxMs)),
		serverLoopDelayP99Ms: loop.loopDelayP99Ms,
		serverLoopDelayMaxMs: loop.loopDelayMaxMs,
		serverGcMaxMs: loop.gcMaxMs,
		rssMb: after.rssMb,
		...(database0 && database1
			? {
					database: {
						commits: (database1.commits - database0.commits) / seconds,
						walKb: (database1.walBytes - database0.walBytes) / 1_024 / seconds,
						fullPages: (database1.fullPages - database0.fullPages) / seconds,
						walSyncs: (database1.walSyncs - database0.walSyncs) / seconds,
					},
				}
			: {}),
		profiles,
		pass: latencies.length > 0 && p99Ms < P99_LIMIT_MS && errors.length === 0,
	};
}

/**
 * Where the users that did not connect were stuck, over the generators, and the commonest reasons connections
 * failed meanwhile: `authenticating 800, syncing 72; closed 1006 × 700`.
 */
function stuckOf(added: { stuck: Record<string, number>; failures: Record<string, number> }[]): string {
	const sum = (of: (a: (typeof added)[number]) => Record<string, number>) => {
		const total: Record<string, number> = {};
		for (const a of added) for (const [key, n] of Object.entries(of(a))) total[key] = (total[key] ?? 0) + n;
		return Object.entries(total).sort((a, b) => b[1] - a[1]);
	};
	const stages = sum((a) => a.stuck).map(([stage, n]) => `${stage} ${n}`);
	const reasons = sum((a) => a.failures)
		.slice(0, 3)
		.map(([why, n]) => `${why} × ${n}`);
	return [stages.join(', '), ...(reasons.length > 0 ? [reasons.join(', ')] : [])].join('; ');
}

/** Sums counts by type over the generators, per second. */
function perSecond(counts: Record<string, number>[], seconds: number): Record<string, number> {
	const sum: Record<string, number> = {};
	for (const c of counts)
		for (const [type, n] of Object.entries(c)) sum[type] = (sum[type] ?? 0) + n / seconds;
	return sum;
}

async function run(target: Target) {
	const running = await startTarget(target, {
		clients: MAX_USERS,
		rooms: Math.ceil(MAX_USERS / ROOM_MEMBERS),
		grouped: true,
	});
	const workers = generators();
	const epoch = String(process.hrtime.bigint());
	for (const w of workers) w.send({ type: 'start', epoch, mix } satisfies ToCapacityGenerator);
	const steps: Step[] = [];
	try {
		for (let users = 0; users < MAX_USERS;) {
			const to = Math.min(MAX_USERS, users === 0 ? START_USERS : users + STEP_USERS);
			const s = await step(running, workers, users, to);
			users = to;
			steps.push(s);
			console.log(
				`${target} ${s.users} users: connected in ${fmt(s.burst.syncedS)} s (spread over ${fmt(s.burst.spreadS)} s; ${s.burst.failures} failed connections, ${s.burst.overflows} listen-queue overflows); ` +
					`${fmt(s.messagesPerSecond, 0)} messages/s, ${fmt(s.deliveriesPerSecond, 0)} deliveries/s, ` +
					(Object.keys(s.channelPerSecond).length > 0
						? `user channels ${Object.entries(s.channelPerSecond)
								.map(([type, n]) => `${type} ${fmt(n, 0)}/s`)
								.join(' ')}, `
						: '') +
					`p50 ${fmt(s.p50Ms)} ms, p99 ${fmt(s.p99Ms)} ms, errors ${s.errors.length}, cores: server ${fmt(s.serverCores, 2)}, ` +
					`generator ${fmt(s.generatorCores, 2)}, Postgres ${fmt(s.postgresCores, 2)}, machine ${fmt(s.machineCores, 2)}, generator's cores ${fmt(s.generatorCoreBusy * 100, 0)} % busy; ` +
					(s.database
						? `Postgres ${fmt(s.database.commits, 0)} commits/s, WAL ${fmt(s.database.walKb, 0)} KB/s (${fmt(s.database.fullPages, 0)} full pages/s, ${fmt(s.database.walSyncs, 0)} flushes/s); `
						: '') +
					`server loop delay p99/max ${fmt(s.serverLoopDelayP99Ms)}/${fmt(s.serverLoopDelayMaxMs)} ms, longest GC ${fmt(s.serverGcMaxMs)} ms; RSS ${fmt(s.rssMb, 0)} MB: ${s.pass ? 'pass' : `FAIL${saturation(s)} ${s.errors.slice(0, 3).join('; ')}`}`,
			);
			if (!s.pass) break;
		}
	} finally {
		await Promise.all(
			workers.map(async (w) => {
				if (w.exitCode !== null) return;
				const exited = new Promise((r) => w.once('exit', r));
				w.send({ type: 'close' } satisfies ToCapacityGenerator);
				const timer = setTimeout(() => w.kill('SIGKILL'), 15_000);
				await exited;
				clearTimeout(timer);
			}),
		);
		await running.stop();
	}
	const best = steps.filter((s) => s.pass).at(-1);
	const failed = steps.find((s) => !s.pass);
	return {
		target,
		maxUsers: best?.users ?? 0,
		usersPerCore: best?.users ?? 0,
		usersPerGb: best ? best.users / (best.rssMb / 1024) : 0,
		serverCoresAtMax: best?.serverCores ?? NaN,
		rssMbAtMax: best?.rssMb ?? NaN,
		p99AtMaxMs: best?.p99Ms ?? NaN,
		limit: !failed
			? `not reached (${MAX_USERS} users)`
			: failed.errors.length > 0
				? `errors: ${failed.errors.slice(0, 2).join('; ')}`
				: `p99 ${fmt(failed.p99Ms, 0)} ms at ${failed.users} users (cores: server ${fmt(failed.serverCores, 2)}, generator ${fmt(failed.generatorCores, 2)}, Postgres ${fmt(failed.postgresCores, 2)}, machine ${fmt(failed.machineCores, 2)})${saturation(failed)}`,
		steps,
	};
}

const results = [];
for (const target of TARGETS) results.push(await run(target));
const seed = results.find((r) => r.target === 'seed');
const bare = results.find((r) => r.target === 'bare');
const ratio = (v: number, base: number | undefined) => (base ? `${fmt(v / base, 2)}×` : '–');
const table = [
	`Users added ${START_USERS} then ${STEP_USERS} a step up to ${MAX_USERS}, ${ROOM_MEMBERS} per room; each writes a message every ${mix.messageMs / 1000} s (typed first), ${mix.presenceMs > 0 ? `renews presence every ${mix.presenceMs / 1000} s` : 'never renews presence'}, reports reads at most every ${mix.readMs / 1000} s${mix.userChannels ? `, has its user channel open (ours${mix.channelPresence ? ', its presence renewed too' : ''})` : ''}, reopens its room every ${mix.reopenMeanMs / 60_000} min on average; ${WARMUP_S} s then a ${WINDOW_S}-s window per step; a step passes with p99 < ${P99_LIMIT_MS} ms and no error${pinning ? '; the server on one core, the generator on the other' : ' (not pinned: PIN=off)'}:`,
	'',
	'| Target | users per core | ×bare | ×seed | users per GB of RSS | server cores used there | RSS MB there | p99 ms there | what ended it |',
	'| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
	...results.map(
		(r) =>
			`| ${r.target} | ${fmt(r.usersPerCore, 0)} | ${ratio(r.usersPerCore, bare?.usersPerCore)} | ${ratio(r.usersPerCore, seed?.usersPerCore)} | ${fmt(r.usersPerGb, 0)} | ${fmt(r.serverCoresAtMax, 2)} | ${fmt(r.rssMbAtMax, 0)} | ${fmt(r.p99AtMaxMs)} | ${r.limit.replaceAll('|', '/')} |`,
	),
].join('\n');
console.log(`\n${table}`);
writeResult(smoke ? 'capacity-smoke' : 'capacity', { smoke, mix, results, table });
process.exit(0);

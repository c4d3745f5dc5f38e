/**
 * Preloaded into every benchmark target (`node --expose-gc --import ./bench/targets/gc-on-signal.ts …`):
 * - on SIGUSR2 it runs a full garbage collection and prints one line with the heap in use after it (and the heap
 *   V8 holds, and the external memory), how late the event loop ran since the previous line (p99 and max), the
 *   longest garbage-collection pause in that time and the collections by kind (`gcByKind`: count and ms of the
 *   pauses, minor and incremental marking apart), so memory is read without garbage in it and a stalled server
 *   shows as such, told apart from a collector's pause;
 * - with BENCH_CPU_PROF=<dir>, SIGWINCH starts V8's CPU profiler and the next SIGWINCH stops it and writes
 *   `<dir>/<BENCH_TARGET>-<pid>.cpuprofile`, so a profile covers the measured windows only, not the start or the
 *   connecting (bench/harness.ts `profile`); with BENCH_ALLOC_PROF=<dir> instead, the same signals take a sampling
 *   profile of every allocation (kept or collected since) and write `<dir>/<BENCH_TARGET>-<pid>.heapprofile`: where
 *   the garbage the collector's share of a CPU profile goes to comes from; BENCH_ALLOC_PROF_PROMOTED set leaves
 *   out what died young, so the profile is what outlived a scavenge: what the old generation fills with (a minor
 *   collection right before the profile is written takes out what died since the last one);
 * - with BENCH_TRACE_GC set (through SERVER_ENV for ours), V8 prints a line per collection (`--trace-gc`) into the
 *   target's output, which `TEST_SERVER_LOG_DIR=<dir>` keeps in a file per process;
 * - BENCH_V8_FLAGS="--flag --other" sets V8 flags that Node refuses in NODE_OPTIONS (`--no-parallel-scavenge`),
 *   for an experiment with the collector.
 */
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

if (process.env.BENCH_TRACE_GC) v8.setFlagsFromString('--trace-gc');
for (const flag of process.env.BENCH_V8_FLAGS?.split(/\s+/).filter(Boolean) ?? [])
	v8.setFlagsFromString(flag);

const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
let gcMaxMs = 0;
/** Collections since the previous line, by kind (minor, major, incremental, weakcb): count and ms in all. */
let gcByKind: Record<string, { count: number; ms: number }> = {};
const gcKinds: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
new PerformanceObserver((list) => {
	for (const entry of list.getEntries()) {
		gcMaxMs = Math.max(gcMaxMs, entry.duration);
		const { detail } = entry as PerformanceEntry & { detail?: { kind?: number } };
		const kind = gcKinds[detail?.kind ?? 0] ?? 'other';
		const sum = (gcByKind[kind] ??= { count: 0, ms: 0 });
		sum.count++;
		sum.ms += entry.duration;
	}
}).observe({ entryTypes: ['gc'] });

process.on('SIGUSR2', () => {
	// Read before the collection this asks for, and reset a little after it: its own pause is not the server's.
	const loopDelayP99Ms = delay.percentile(99) / 1e6;
	const loopDelayMaxMs = delay.max / 1e6;
	const gcMax = gcMaxMs;
	const gcSince = gcByKind;
	(globalThis as { gc?: () => void }).gc?.();
	const memory = process.memoryUsage();
	console.log(
		JSON.stringify({
			msg: 'bench gc done',
			heapUsedMb: memory.heapUsed / 2 ** 20,
			// What V8 holds for its heap (used or not), and the memory of Buffers and other external objects: with
			// the heap in use, they tell what of a process's RSS is the JavaScript heap's and what is native.
			heapTotalMb: memory.heapTotal / 2 ** 20,
			externalMb: memory.external / 2 ** 20,
			loopDelayP99Ms,
			loopDelayMaxMs,
			gcMaxMs: gcMax,
			gcByKind: gcSince,
		}),
	);
	setTimeout(() => {
		delay.reset();
		gcMaxMs = 0;
		gcByKind = {};
	}, 50);
});

const cpuDir = process.env.BENCH_CPU_PROF;
const allocDir = process.env.BENCH_ALLOC_PROF;
const profileDir = cpuDir ?? allocDir;
if (cpuDir && allocDir) throw new Error('BENCH_CPU_PROF and BENCH_ALLOC_PROF: one profile at a time');
if (profileDir) {
	const session = new Session();
	session.connect();
	let running = false;
	/** One sample per 16 KB allocated: tens of thousands over a measured window at the goal-1 load. */
	const samplingInterval = 16_384;
	process.on('SIGWINCH', () => {
		running = !running;
		void (async () => {
			if (running) {
				if (allocDir)
					await session.post('HeapProfiler.startSampling', {
						samplingInterval,
						includeObjectsCollectedByMajorGC: true,
						includeObjectsCollectedByMinorGC: !process.env.BENCH_ALLOC_PROF_PROMOTED,
					});
				else {
					await session.post('Profiler.enable');
					await session.post('Profiler.start');
				}
				console.log(JSON.stringify({ msg: 'bench profile started' }));
				return;
			}
			// What died young but was not yet collected when the window ends would read as promoted: collect it first.
			if (allocDir && process.env.BENCH_ALLOC_PROF_PROMOTED)
				(globalThis as { gc?: (options: { type: 'minor' }) => void }).gc?.({ type: 'minor' });
			const { profile } = allocDir
				? await session.post('HeapProfiler.stopSampling')
				: await session.post('Profiler.stop');
			const file = path.join(
				profileDir,
				`${process.env.BENCH_TARGET ?? 'target'}-${process.pid}.${allocDir ? 'heapprofile' : 'cpuprofile'}`,
			);
			fs.mkdirSync(profileDir, { recursive: true });
			fs.writeFileSync(file, JSON.stringify(profile));
			console.log(JSON.stringify({ msg: 'bench profile written', file }));
		})();
	});
}

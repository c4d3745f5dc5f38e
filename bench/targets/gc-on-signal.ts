/**
 * Preloaded into every benchmark target (`node --expose-gc --import ./bench/targets/gc-on-signal.ts …`): on
 * SIGUSR2 it runs a full garbage collection and prints one line with the heap in use after it (and the heap V8
 * holds, and the external memory), and how late the
 * event loop ran since the previous line (p99 and max), so memory is read without garbage in it and a stalled
 * server shows as such.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
process.on('SIGUSR2', () => {
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
			loopDelayP99Ms: delay.percentile(99) / 1e6,
			loopDelayMaxMs: delay.max / 1e6,
		}),
	);
	delay.reset();
});

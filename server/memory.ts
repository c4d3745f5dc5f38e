import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from 'pino';

/** Heap capacity beyond what is in use that is worth a collection to give back. */
const SLACK_BYTES = 48 * 2 ** 20;

type Gc = (options?: {
	type?: 'major' | 'minor';
	execution?: 'sync' | 'async';
	flavor?: 'regular' | 'last-resort';
}) => void;

/** V8's collector, without starting node with --expose-gc (the flag is read when a context is created). */
function collector(): Gc | undefined {
	try {
		v8.setFlagsFromString('--expose-gc');
		return vm.runInNewContext('gc') as Gc;
	} catch {
		return undefined;
	}
}

/**
 * Gives memory back after a burst. Under a burst of traffic (a flood of hostile updates, a reconnect storm) V8
 * grows its heap — the young generation alone to 128 MB — and keeps that capacity once the burst is over: in the
 * issue 15 fuzz, RSS stayed 50–150 MB up for minutes with 40 MB of it in use. Every `intervalMs` (5 s) this
 * compares the activity (WebSocket frames) of the last interval with the busiest interval since the last reclaim;
 * when a burst of at least `burst` frames (1,000) has fallen to a third and V8 holds at least 48 MB more heap than
 * it uses, it runs one memory-reducing collection (a pause of tens of milliseconds, at a quieter moment; at most
 * one per 30 s) and logs what it returned.
 */
export class IdleReclaim {
	readonly #gc = collector();
	readonly #timer: ReturnType<typeof setInterval>;
	#seen = 0;
	#peak = 0;
	#last = 0;

	constructor(options: { activity: () => number; log: Logger; intervalMs?: number; burst?: number }) {
		const burst = options.burst ?? 1_000;
		const log = options.log.child({ component: 'memory' });
		this.#timer = setInterval(() => {
			const total = options.activity();
			const recent = total - this.#seen;
			this.#seen = total;
			this.#peak = Math.max(this.#peak, recent);
			if (!this.#gc || this.#peak < burst || recent > this.#peak / 3) return;
			// Only when V8 holds much more than it uses, and at most twice a minute, whatever the traffic does.
			const { heapTotal, heapUsed } = process.memoryUsage();
			if (heapTotal - heapUsed < SLACK_BYTES || Date.now() - this.#last < 30_000) return;
			this.#last = Date.now();
			this.#peak = recent;
			const before = { heapTotal, rss: process.memoryUsage.rss() };
			const started = performance.now();
			this.#gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
			const after = process.memoryUsage();
			const mb = (n: number) => Math.round(n / 2 ** 20);
			log.info(
				{
					pauseMs: Math.round(performance.now() - started),
					heapTotalMb: [mb(before.heapTotal), mb(after.heapTotal)],
					rssMb: [mb(before.rss), mb(after.rss)],
				},
				'a burst is over: heap capacity returned',
			);
		}, options.intervalMs ?? 5_000);
		this.#timer.unref();
	}

	close(): void {
		clearInterval(this.#timer);
	}
}

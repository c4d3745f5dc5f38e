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
 * compares the activity (WebSocket frames received) of the last interval with the busiest interval since the last
 * reclaim; when a burst of at least `burst` frames (1,000) has fallen to a tenth and V8 holds at least 48 MB more
 * heap than it uses, it runs one memory-reducing collection and logs what it returned. That collection stops the
 * server for tens to hundreds of milliseconds, so it waits for the burst to be over, not merely smaller: at a third
 * it also fired under a steady load after the connections' first burst, and put a 430-ms stall into the load
 * benchmark's windows (issue 21). At most one per minute, whatever the traffic does.
 */
export class IdleReclaim {
	readonly #gc: Gc | undefined;
	readonly #timer: ReturnType<typeof setInterval>;
	#seen = 0;
	#peak = 0;
	#last = 0;

	constructor(options: {
		activity: () => number;
		log: Logger;
		intervalMs?: number;
		burst?: number;
		/** The collector and the heap's figures (tests stand in for V8's). */
		gc?: Gc;
		memoryUsage?: () => { heapTotal: number; heapUsed: number; rss: number };
	}) {
		const burst = options.burst ?? 1_000;
		const memoryUsage = options.memoryUsage ?? (() => process.memoryUsage());
		this.#gc = options.gc ?? collector();
		const log = options.log.child({ component: 'memory' });
		this.#timer = setInterval(() => {
			const total = options.activity();
			const recent = total - this.#seen;
			this.#seen = total;
			this.#peak = Math.max(this.#peak, recent);
			if (!this.#gc || this.#peak < burst || recent > this.#peak / 10) return;
			const { heapTotal, heapUsed, rss } = memoryUsage();
			if (heapTotal - heapUsed < SLACK_BYTES || Date.now() - this.#last < 60_000) return;
			this.#last = Date.now();
			this.#peak = recent;
			const before = { heapTotal, rss };
			const started = performance.now();
			this.#gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
			const after = memoryUsage();
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

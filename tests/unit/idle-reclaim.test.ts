import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from 'pino';
import { IdleReclaim } from '../../server/memory.ts';

const MB = 2 ** 20;

/**
 * An IdleReclaim over a frame counter the test drives, one interval at a time (fake timers), with a heap that
 * always holds 100 MB more than it uses and a collector that only counts.
 */
function reclaim() {
	let frames = 0;
	const collections: unknown[] = [];
	const log = { child: () => ({ info: () => {} }) } as unknown as Logger;
	const idle = new IdleReclaim({
		activity: () => frames,
		log,
		intervalMs: 1_000,
		burst: 1_000,
		gc: (options) => collections.push(options),
		memoryUsage: () => ({ heapTotal: 150 * MB, heapUsed: 50 * MB, rss: 200 * MB }),
	});
	/** One interval in which `n` frames arrived. */
	const interval = (n: number) => {
		frames += n;
		vi.advanceTimersByTime(1_000);
	};
	return { idle, interval, collections };
}

describe('giving heap back after a burst', () => {
	afterEach(() => vi.useRealTimers());

	it('waits through a steady load that follows a burst: the collection would stall it', () => {
		vi.useFakeTimers();
		const { idle, interval, collections } = reclaim();
		// The connections' first burst, then a steady load at a fifth of it (the load benchmark's shape).
		interval(5_000);
		for (let i = 0; i < 120; i++) interval(1_000);
		expect(collections).toEqual([]);
		idle.close();
	});

	it('collects once when the burst is over, and not again within the minute', () => {
		vi.useFakeTimers();
		const { idle, interval, collections } = reclaim();
		interval(20_000);
		interval(20_000);
		interval(100);
		expect(collections).toEqual([{ type: 'major', execution: 'sync', flavor: 'last-resort' }]);
		// Another burst at once: over again, but the last collection is less than a minute old; once it is, the
		// heap that burst left is given back.
		interval(20_000);
		for (let i = 0; i < 55; i++) interval(50);
		expect(collections).toHaveLength(1);
		for (let i = 0; i < 10; i++) interval(50);
		expect(collections).toHaveLength(2);
		idle.close();
	});

	it('never collects for traffic too small to be a burst', () => {
		vi.useFakeTimers();
		const { idle, interval, collections } = reclaim();
		interval(900);
		for (let i = 0; i < 70; i++) interval(0);
		expect(collections).toEqual([]);
		idle.close();
	});
});

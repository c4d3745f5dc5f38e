import { describe, expect, it } from 'vitest';
import { Concurrency } from '../../server/concurrency.ts';

describe('Concurrency', () => {
	it('runs at most its limit at once, the rest in order, and frees a slot when a task fails', async () => {
		const slots = new Concurrency(2);
		let running = 0;
		let most = 0;
		const order: number[] = [];
		const task = (n: number, fail = false) =>
			slots.run(async () => {
				running++;
				most = Math.max(most, running);
				order.push(n);
				await new Promise((r) => setTimeout(r, 5));
				running--;
				if (fail) throw new Error(`task ${n} failed`);
				return n;
			});
		const results = await Promise.allSettled([task(1), task(2, true), task(3), task(4), task(5)]);
		expect(most).toBe(2);
		expect(order).toEqual([1, 2, 3, 4, 5]);
		expect(results.map((r) => r.status)).toEqual([
			'fulfilled',
			'rejected',
			'fulfilled',
			'fulfilled',
			'fulfilled',
		]);
		expect(await slots.run(async () => 'free again')).toBe('free again');
	});
});

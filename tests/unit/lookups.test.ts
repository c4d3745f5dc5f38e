import { describe, expect, it } from 'vitest';
import { Lookups } from '../../server/db/lookups.ts';

/** Lookups of numbers whose `find` records every call and answers the even keys with their double. */
function doubling(maxKeys?: number) {
	const calls: number[][] = [];
	let fail = false;
	const lookups = new Lookups<number, number | null>({
		find: async (keys) => {
			calls.push(keys);
			if (fail) throw new Error('database down');
			return new Map(keys.filter((k) => k % 2 === 0).map((k) => [String(k), k * 2]));
		},
		idOf: String,
		missing: null,
		...(maxKeys === undefined ? {} : { maxKeys }),
	});
	return { lookups, calls, failNext: () => (fail = true) };
}

describe('lookups gathered per turn', () => {
	it('asks once for what one turn asked, each key once, and answers each caller', async () => {
		const { lookups, calls } = doubling();
		const answers = await Promise.all([2, 3, 2, 4].map((k) => lookups.get(k)));
		expect(answers).toEqual([4, null, 4, 8]);
		expect(calls).toEqual([[2, 3, 4]]);
		// The next turn is a query of its own.
		expect(await lookups.get(6)).toBe(12);
		expect(calls).toEqual([[2, 3, 4], [6]]);
	});

	it('splits a big turn into queries of at most maxKeys keys', async () => {
		const { lookups, calls } = doubling(2);
		expect(await Promise.all([1, 2, 3, 4, 5].map((k) => lookups.get(k)))).toEqual([null, 4, null, 8, null]);
		expect(calls).toEqual([[1, 2], [3, 4], [5]]);
	});

	it('fails the lookups of a failed query, and the next turn asks again', async () => {
		const { lookups, calls, failNext } = doubling();
		failNext();
		const failed = [lookups.get(2), lookups.get(2)];
		await expect(failed[0]).rejects.toThrow('database down');
		await expect(failed[1]).rejects.toThrow('database down');
		expect(calls).toEqual([[2]]);
	});

	it('fails the lookups of a find that throws before it returns a promise', async () => {
		const lookups = new Lookups<number, number>({
			find: () => {
				throw new Error('no connection');
			},
			idOf: String,
			missing: 0,
		});
		await expect(lookups.get(1)).rejects.toThrow('no connection');
	});
});

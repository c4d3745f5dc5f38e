import { describe, expect, it } from 'vitest';
import { sentAtUs, stampedId } from '../../bench/client.ts';
import { uuid } from '../../src/lib/protocol/ids.ts';

/** The load generator times a delivery in any of its processes from the send time carried in the message's id. */
describe('a benchmark message id', () => {
	it('is a uuid the server accepts, unique, and gives back its send time', () => {
		const times = [0, 1, 1_234_567.8, 2 ** 47, 9 * 60 * 60 * 1e6];
		const ids = times.map(stampedId);
		for (const [i, id] of ids.entries()) {
			expect(uuid.safeParse(id).success, id).toBe(true);
			expect(sentAtUs(id)).toBe(Math.floor(times[i] as number));
		}
		const many = new Set(Array.from({ length: 1_000 }, () => stampedId(42)));
		expect(many.size).toBe(1_000);
	});

	it('is told apart from the ids of other writers', () => {
		expect(sentAtUs(crypto.randomUUID())).toBeNull();
		expect(sentAtUs('not a uuid')).toBeNull();
	});
});

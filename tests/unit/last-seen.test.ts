import { describe, expect, it, vi } from 'vitest';
import { LastSeen } from '../../server/collab/last-seen.ts';
import type { Db } from '../../server/db/index.ts';
import { createLogger } from '../../server/log.ts';

const ana = '00000000-0000-4000-8000-00000000000a';
const ben = '00000000-0000-4000-8000-00000000000b';

function fakeDb(fail = false) {
	const writes: unknown[][] = [];
	const db = {
		kind: 'postgres',
		query: (_sql: string, params: unknown[]) => {
			writes.push(params[0] as unknown[]);
			return fail
				? Promise.reject(new Error('the database is gone'))
				: Promise.resolve({ rows: [], rowCount: 1 });
		},
	} as unknown as Db;
	return { db, writes };
}

describe('last seen', () => {
	it('writes the users seen together in one statement, and each user at most once per resolution', async () => {
		vi.useFakeTimers();
		try {
			const { db, writes } = fakeDb();
			const lastSeen = new LastSeen(db, createLogger('silent'));
			lastSeen.seen(ana);
			lastSeen.seen(ben);
			lastSeen.seen(ana);
			expect(writes).toHaveLength(0);
			await vi.advanceTimersByTimeAsync(300);
			expect(writes).toEqual([[ana, ben]]);

			// Seen again within the resolution: nothing to write.
			lastSeen.seen(ana);
			await vi.advanceTimersByTimeAsync(300);
			expect(writes).toHaveLength(1);
			await vi.advanceTimersByTimeAsync(15_000);
			lastSeen.seen(ana);
			await lastSeen.flush();
			expect(writes).toEqual([[ana, ben], [ana]]);
		} finally {
			vi.useRealTimers();
		}
	});

	it('never fails: a write the database refuses is logged', async () => {
		const { db, writes } = fakeDb(true);
		const warnings: unknown[] = [];
		const log = createLogger('silent');
		log.warn = ((...args: unknown[]) => void warnings.push(args)) as typeof log.warn;
		const lastSeen = new LastSeen(db, log);
		lastSeen.seen(ana);
		await expect(lastSeen.flush()).resolves.toBeUndefined();
		expect(writes).toEqual([[ana]]);
		expect(warnings).toHaveLength(1);
	});
});

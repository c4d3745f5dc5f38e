import { describe, expect, it } from 'vitest';
import { DurableLog } from '../../server/collab/durable-log.ts';
import type { Db } from '../../server/db/index.ts';
import { createLogger } from '../../server/log.ts';

/** A database whose statements finish when the test says so; it records each batch's size. */
function fakeDb() {
	const open: { size: number; finish(error?: Error): void }[] = [];
	const db = {
		kind: 'postgres',
		query: (_sql: string, params?: unknown[]) =>
			new Promise((resolve, reject) => {
				const size = (params?.[0] as unknown[]).length;
				open.push({ size, finish: (error) => (error ? reject(error) : resolve({ rows: [], rowCount: 0 })) });
			}),
	} as unknown as Db;
	return { db, open };
}

const tick = () => new Promise((r) => setImmediate(r));
const entry = (n: number) => ({
	documentName: `room:${n}`,
	roomId: '00000000-0000-4000-8000-000000000000',
	update: new Uint8Array([n]),
	events: [],
});

/** What becomes of an append: 'stored', or the error it was refused with. */
const outcomes = (log: DurableLog) => (n: number) =>
	log.append(entry(n)).then(
		() => 'stored',
		(error: Error) => error.message,
	);

describe('the durable log', () => {
	it('commits a lone update at once, and groups what arrives while a commit is under way', async () => {
		const { db, open } = fakeDb();
		const log = new DurableLog(db, createLogger('silent'));
		const done: number[] = [];
		const append = (n: number) => log.append(entry(n)).then(() => done.push(n));

		void append(1);
		await tick();
		expect(open.map((c) => c.size)).toEqual([1]);

		// While it is under way, the next ones gather and go together when it finishes.
		void append(2);
		void append(3);
		void append(4);
		await tick();
		expect(open).toHaveLength(1);
		open[0]?.finish();
		await tick();
		await tick();
		expect(done).toEqual([1]);
		expect(open.map((c) => c.size)).toEqual([1, 3]);

		let drained = false;
		const draining = log.drain().then(() => (drained = true));
		await tick();
		expect(drained).toBe(false);
		open[1]?.finish();
		await draining;
		expect(done).toEqual([1, 2, 3, 4]);
	});

	it('with several commits in flight, a batch waits for a free one only, not for the commits before it', async () => {
		const { db, open } = fakeDb();
		const log = new DurableLog(db, createLogger('silent'), undefined, { commitsInFlight: 2 });
		const done: number[] = [];
		const append = (n: number) => log.append(entry(n)).then(() => done.push(n));

		void append(1);
		await tick();
		// The next turn's appends go at once, beside the first commit.
		void append(2);
		void append(3);
		await tick();
		expect(open.map((c) => c.size)).toEqual([1, 2]);

		// Both under way: the next ones gather until one of them finishes, whichever it is.
		void append(4);
		void append(5);
		await tick();
		expect(open).toHaveLength(2);
		open[1]?.finish();
		await tick();
		await tick();
		expect(done).toEqual([2, 3]);
		expect(open.map((c) => c.size)).toEqual([1, 2, 2]);

		let drained = false;
		const draining = log.drain().then(() => (drained = true));
		open[2]?.finish();
		await tick();
		await tick();
		expect(done).toEqual([2, 3, 4, 5]);
		expect(drained).toBe(false);
		open[0]?.finish();
		await draining;
		expect(done).toEqual([2, 3, 4, 5, 1]);
	});

	it('commits a batch again after a deadlock, and refuses it after a few in a row', async () => {
		const { db, open } = fakeDb();
		const log = new DurableLog(db, createLogger('silent'));
		const deadlock = () => Object.assign(new Error('deadlock detected'), { code: '40P01' });
		const outcome = outcomes(log);
		const first = outcome(1);
		await tick();
		open[0]?.finish(deadlock());
		await tick();
		expect(open.map((c) => c.size)).toEqual([1, 1]);
		open[1]?.finish();
		expect(await first).toBe('stored');

		const second = outcome(2);
		for (let i = 0; i < 4; i++) {
			await tick();
			open.at(-1)?.finish(deadlock());
		}
		expect(await second).toBe('deadlock detected');
		expect(open).toHaveLength(6);
	});

	it('refuses the updates of a failed commit, and only those', async () => {
		const { db, open } = fakeDb();
		const log = new DurableLog(db, createLogger('silent'));
		const first = log.append(entry(1)).catch((error: Error) => error.message);
		await tick();
		const second = log.append(entry(2));
		open[0]?.finish(new Error('connection lost'));
		await tick();
		await tick();
		open[1]?.finish();
		expect(await first).toBe('connection lost');
		await expect(second).resolves.toBeUndefined();
	});

	it('splits a batch the database refuses for one value, and refuses that update alone', async () => {
		const { db, open } = fakeDb();
		const log = new DurableLog(db, createLogger('silent'));
		const outcome = outcomes(log);
		const first = outcome(1);
		await tick();
		const rest = [outcome(2), outcome(3), outcome(4)];
		open[0]?.finish();
		await tick();
		await tick();
		// The batch of 2, 3 and 4 fails for a value out of range (SQLSTATE 22008)…
		expect(open.map((c) => c.size)).toEqual([1, 3]);
		open[1]?.finish(Object.assign(new Error('date/time field value out of range'), { code: '22008' }));
		// …and each goes again on its own: only 3 fails again.
		for (const n of [2, 3, 4]) {
			await tick();
			await tick();
			expect(open.at(-1)?.size).toBe(1);
			open
				.at(-1)
				?.finish(
					n === 3
						? Object.assign(new Error('date/time field value out of range'), { code: '22008' })
						: undefined,
				);
		}
		expect(await first).toBe('stored');
		expect(await Promise.all(rest)).toEqual([
			'stored',
			'the database refused a value of this update',
			'stored',
		]);
	});
});

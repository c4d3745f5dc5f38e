import { describe, expect, it } from 'vitest';
import type { Logger } from 'pino';
import { FloodLog } from '../../server/log.ts';

/** A logger that keeps what it is given. */
function recorder() {
	const lines: { fields: Record<string, unknown>; message: string }[] = [];
	const levels: string[] = [];
	const at = (level: string) => (fields: Record<string, unknown>, message: string) => {
		levels.push(level);
		lines.push({ fields, message });
	};
	const log = { warn: at('warn'), error: at('error') };
	return { log: log as unknown as Logger, lines, levels };
}

describe('a flood of refusals in the log', () => {
	it('gets a line each up to the limit, then one summary per interval, by reason', async () => {
		const { log, lines } = recorder();
		const flood = new FloodLog(log, { perInterval: 3, intervalMs: 50 });
		for (let i = 0; i < 10; i++)
			flood.warn({ reason: i % 2 ? 'rate-limited' : 'invalid-update: x' }, 'update rejected');
		expect(lines.map((l) => l.message)).toEqual(['update rejected', 'update rejected', 'update rejected']);
		await new Promise((resolve) => setTimeout(resolve, 80));
		expect(lines).toHaveLength(4);
		expect(lines[3]?.fields).toMatchObject({
			suppressed: 7,
			byReason: { 'invalid-update': 3, 'rate-limited': 4 },
		});
		// The next interval starts afresh.
		flood.warn({ reason: 'rate-limited' }, 'update rejected');
		expect(lines).toHaveLength(5);
	});

	it('logs errors at error level, and sums them up in the same way', async () => {
		const { log, lines, levels } = recorder();
		const flood = new FloodLog(log, { perInterval: 2, intervalMs: 50 });
		for (let i = 0; i < 5; i++) flood.error({ reason: '25006' }, 'durable append failed');
		expect(levels).toEqual(['error', 'error']);
		await new Promise((resolve) => setTimeout(resolve, 80));
		expect(levels).toEqual(['error', 'error', 'warn']);
		expect(lines[2]?.fields).toMatchObject({ suppressed: 3, byReason: { '25006': 3 } });
	});
});

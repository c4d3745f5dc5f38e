import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { repoRoot } from '../helpers/process.ts';

const results = path.join(repoRoot, 'bench', 'results');
const read = <T>(name: string) => JSON.parse(fs.readFileSync(path.join(results, name), 'utf8')) as T;

/**
 * The benchmark harness works (issue 7): `node bench/all.ts --smoke` runs every suite of `npm run bench` with a
 * tiny load against every target and writes its results. Nothing here looks at timings: they belong to
 * `npm run bench`, not to a test. What is checked is that each suite measured something real.
 */
describe.skipIf(!inject('postgresAdminUrl') || !inject('redisUrl'))('npm run bench, smoke', () => {
	it('runs every suite against every target and reports what each measured', async () => {
		for (const f of fs.existsSync(results) ? fs.readdirSync(results) : [])
			if (f.endsWith('-smoke.json') || f === 'summary-smoke.md') fs.rmSync(path.join(results, f));
		const child = spawn(process.execPath, ['bench/all.ts', '--smoke'], {
			cwd: repoRoot,
			env: {
				...process.env,
				TEST_DATABASE_URL: inject('postgresAdminUrl') as string,
				TEST_REDIS_URL: inject('redisUrl') as string,
			},
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		let output = '';
		child.stdout.on('data', (d: Buffer) => (output += d.toString()));
		child.stderr.on('data', (d: Buffer) => (output += d.toString()));
		const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
		expect(code, output).toBe(0);

		const load = read<{
			results: { target: string; deliveriesPerSecond: number; p99Ms: number; rssMb: number }[];
		}>('load-smoke.json');
		expect(load.results.map((r) => r.target)).toEqual([
			'bare',
			'yws',
			'seed',
			'ours',
			'bare-2node',
			'ours-2node',
		]);
		for (const r of load.results) {
			expect(r.deliveriesPerSecond, r.target).toBeGreaterThan(0);
			expect(Number.isFinite(r.p99Ms), r.target).toBe(true);
			expect(r.rssMb, r.target).toBeGreaterThan(0);
		}

		const maxRate = read<{ results: { target: string; steps: { deliveriesPerSecond: number }[] }[] }>(
			'max-rate-smoke.json',
		);
		expect(maxRate.results.map((r) => r.target)).toEqual(['bare', 'seed', 'ours']);
		for (const r of maxRate.results) expect(r.steps[0]?.deliveriesPerSecond, r.target).toBeGreaterThan(0);

		const rooms = read<{ results: { target: string; kbPerRoom: number }[] }>('room-memory-smoke.json');
		expect(rooms.results.map((r) => r.target)).toEqual(['bare', 'ours']);
		for (const r of rooms.results) expect(Number.isFinite(r.kbPerRoom), r.target).toBe(true);

		const cold = read<{
			open: Record<string, { serverRatio: number; endToEndRatio: number }>;
			mirror: { ratio: number };
		}>('cold-paths-smoke.json');
		expect(Object.keys(cold.open)).toHaveLength(2);
		for (const o of Object.values(cold.open)) expect(o.serverRatio).toBeGreaterThan(0);
		expect(cold.mirror.ratio).toBeGreaterThan(0);

		// The soak checks the server end to end: every message delivered and mirrored, nothing logged as wrong.
		const soak = read<{
			sent: number;
			rows: number;
			undelivered: number;
			problems: string[];
			minutes: unknown[];
		}>('soak-smoke.json');
		expect(soak.sent).toBeGreaterThan(0);
		expect(soak.rows).toBe(soak.sent);
		expect(soak.undelivered).toBe(0);
		expect(soak.problems).toEqual([]);
		expect(soak.minutes.length).toBeGreaterThanOrEqual(2);

		// Capacity: tiny steps with the whole mix (reconnects included). Its timing is not judged here, but every
		// step must deliver and have no error: a user who cannot connect, or a message never acknowledged (the
		// thin clients re-send on reconnect, as devices do), is a harness or server fault.
		const capacity = read<{
			results: {
				target: string;
				steps: { deliveriesPerSecond: number; errors: string[]; generatorCoreBusy: number }[];
			}[];
		}>('capacity-smoke.json');
		expect(capacity.results.map((r) => r.target)).toEqual(['bare', 'seed', 'ours']);
		for (const r of capacity.results) {
			expect(r.steps.length, r.target).toBeGreaterThan(0);
			expect(
				r.steps.flatMap((s) => s.errors),
				r.target,
			).toEqual([]);
			expect(
				r.steps.every((s) => s.deliveriesPerSecond > 0),
				r.target,
			).toBe(true);
			// How busy the generator's cores were, read from /proc/stat: a share of them, never missing.
			for (const s of r.steps) expect(s.generatorCoreBusy, r.target).toBeGreaterThan(0);
			for (const s of r.steps) expect(s.generatorCoreBusy, r.target).toBeLessThanOrEqual(1.05);
		}

		const summary = fs.readFileSync(path.join(results, 'summary-smoke.md'), 'utf8');
		for (const suite of ['load', 'max-rate', 'room-memory', 'cold', 'capacity'])
			expect(summary).toContain(`## ${suite}:`);
		expect(summary).toContain('| Target | deliveries/s |');
	}, 300_000);
});

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { repoRoot } from '../helpers/process.ts';

/**
 * The load benchmark's harness works (issue 7): `node bench/load.ts --smoke` runs a tiny load against the three
 * targets and writes its results. Nothing here looks at timings: they belong to `npm run bench`, not to a test.
 */
describe.skipIf(!inject('postgresAdminUrl'))('npm run bench, smoke', () => {
	it('drives all three targets and reports latency, throughput and memory for each', async () => {
		const out = path.join(repoRoot, 'bench', 'results', 'load-smoke.json');
		fs.rmSync(out, { force: true });
		const child = spawn(process.execPath, ['bench/load.ts', '--smoke'], {
			cwd: repoRoot,
			env: { ...process.env, TEST_DATABASE_URL: inject('postgresAdminUrl') as string },
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		let output = '';
		child.stdout.on('data', (d: Buffer) => (output += d.toString()));
		child.stderr.on('data', (d: Buffer) => (output += d.toString()));
		const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
		expect(code, output).toBe(0);
		const report = JSON.parse(fs.readFileSync(out, 'utf8')) as {
			results: { target: string; deliveriesPerSecond: number; p99Ms: number; serverRssMb: number }[];
		};
		expect(report.results.map((r) => r.target)).toEqual(['bare', 'ours', 'yws']);
		for (const r of report.results) {
			expect(r.deliveriesPerSecond, r.target).toBeGreaterThan(0);
			expect(Number.isFinite(r.p99Ms), r.target).toBe(true);
			expect(r.serverRssMb, r.target).toBeGreaterThan(0);
		}
		expect(output).toContain('| Target | deliveries/s |');
	}, 120_000);
});

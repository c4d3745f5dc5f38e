/**
 * Runs a fuzz test file many times, several runs at once (load on the machine is what made the convergence fuzz
 * fail), and lists each run's seed and outcome:
 *
 *   node scripts/fuzz-campaign.ts [--runs 30] [--parallel 2] [--seed N] [--file tests/integration/convergence-fuzz.test.ts]
 *
 * Each run gets a fresh random FUZZ_SEED (printed, so a failure can be replayed with FUZZ_SEED=<seed>), or the
 * one `--seed` gives every run (a seed that failed only under load). Only that seed runs, not the kept ones. The full
 * output of a failed run is kept under test-results/fuzz-campaign/. Exits non-zero if any run failed.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
	options: {
		runs: { type: 'string', default: '30' },
		parallel: { type: 'string', default: '2' },
		file: { type: 'string', default: 'tests/integration/convergence-fuzz.test.ts' },
		seed: { type: 'string' },
	},
});
const runs = Number(values.runs);
const parallel = Number(values.parallel);
for (const [name, n] of [
	['--runs', runs],
	['--parallel', parallel],
] as const) {
	if (!Number.isInteger(n) || n < 1) {
		console.error(`${name} must be a whole number of at least 1`);
		process.exit(2);
	}
}
if (values.seed !== undefined && !/^\d{1,10}$/.test(values.seed)) {
	console.error('--seed must be a whole number from 0 to 4294967295');
	process.exit(2);
}
if (!fs.existsSync(path.join(root, values.file))) {
	console.error(`--file ${values.file}: no such test file`);
	process.exit(2);
}
const outDir = path.join(root, 'test-results', 'fuzz-campaign');
fs.mkdirSync(outDir, { recursive: true });

interface Run {
	n: number;
	seed: number;
	ok: boolean;
	seconds: number;
}

function runOnce(n: number): Promise<Run> {
	const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
	const started = performance.now();
	return new Promise((resolve) => {
		const child = spawn(
			process.execPath,
			[path.join(root, 'node_modules/vitest/vitest.mjs'), 'run', values.file, '--maxWorkers=1'],
			{
				cwd: root,
				env: { ...process.env, FUZZ_SEED: String(seed), FUZZ_ONLY_SEED: '1', TEST_LONG: '1' },
				stdio: ['ignore', 'pipe', 'pipe'],
			},
		);
		let output = '';
		child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
		child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
		child.on('exit', (code) => {
			const run = { n, seed, ok: code === 0, seconds: (performance.now() - started) / 1000 };
			if (!run.ok) fs.writeFileSync(path.join(outDir, `run-${n}-seed-${seed}.log`), output);
			console.log(
				`run ${String(n).padStart(2)}  seed ${String(seed).padStart(10)}  ${run.ok ? 'passed' : 'FAILED'}  ${run.seconds.toFixed(0)} s`,
			);
			resolve(run);
		});
	});
}

const results: Run[] = [];
let next = 1;
await Promise.all(
	Array.from({ length: parallel }, async () => {
		while (next <= runs) results.push(await runOnce(next++));
	}),
);
const failed = results.filter((r) => !r.ok);
console.log(
	`${results.length - failed.length} of ${results.length} runs passed, ${parallel} at a time` +
		(failed.length ? `; failed seeds: ${failed.map((r) => r.seed).join(', ')} (logs in ${outDir})` : ''),
);
process.exit(failed.length ? 1 : 0);

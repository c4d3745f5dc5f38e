/**
 * `npm run bench`: every table of docs/benchmarks.md in one run, one suite after another, each in its own
 * process (so one suite's heap and sockets never weigh on the next). Prints each suite's table as it finishes and
 * writes them all, with the time each took, to bench/results/summary.md.
 *
 * SUITES=load,max-rate,… runs a subset (in the order given). `--smoke` runs every suite in its smoke form: tiny
 * loads, a few seconds each, to check that the harness works; CI does, and asserts nothing about timings.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../tests/helpers/process.ts';

/** Each suite: the script that runs it, its arguments and environment, and the results it writes. */
const suites = {
	// Every target at the goal-1 load; our server's run goes on as the 10-minute soak.
	load: { script: 'bench/load.ts', args: ['--soak'], env: {}, results: ['load', 'soak'] },
	'max-rate': { script: 'bench/max-rate.ts', args: [], env: {}, results: ['max-rate'] },
	'room-memory': { script: 'bench/room-memory.ts', args: [], env: {}, results: ['room-memory'] },
	cold: { script: 'bench/cold-paths.ts', args: [], env: {}, results: ['cold-paths'] },
	// Concurrent users per server core with a team chat's mix, bare, the seed's design and ours (issue 21).
	capacity: { script: 'bench/capacity.ts', args: [], env: {}, results: ['capacity'] },
	// The soak alone (part of `load` above).
	soak: { script: 'bench/load.ts', args: ['--soak'], env: { TARGETS: 'ours' }, results: ['soak'] },
} as const;
type Suite = keyof typeof suites;
const smoke = process.argv.includes('--smoke');
const names = (process.env.SUITES ?? 'load,max-rate,room-memory,cold,capacity')
	.split(',')
	.map((s) => s.trim());
const unknown = names.filter((n) => !(n in suites));
if (unknown.length > 0) {
	console.error(`unknown suite ${unknown.join(', ')}: expected ${Object.keys(suites).join(', ')}`);
	process.exit(2);
}

const resultFile = (name: string) =>
	path.join(repoRoot, 'bench', 'results', `${name}${smoke ? '-smoke' : ''}.json`);

const started = performance.now();
const report: { suite: Suite; seconds: number; code: number | null; table: string }[] = [];
for (const suite of names as Suite[]) {
	const t0 = performance.now();
	const { script, args, env, results } = suites[suite];
	for (const name of results) fs.rmSync(resultFile(name), { force: true });
	const argv = [...args, ...(smoke ? ['--smoke'] : [])];
	console.log(`\n## ${suite} (${script} ${argv.join(' ')})\n`);
	const child = spawn(process.execPath, [script, ...argv], {
		cwd: repoRoot,
		env: { ...process.env, ...env },
		stdio: 'inherit',
	});
	const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
	const seconds = (performance.now() - t0) / 1_000;
	const table = results
		.map((name) => {
			try {
				return (JSON.parse(fs.readFileSync(resultFile(name), 'utf8')) as { table?: string }).table ?? '';
			} catch {
				return `(${name}: no results written)`;
			}
		})
		.join('\n\n');
	report.push({ suite, seconds, code, table });
	console.log(`\n${suite}: ${code === 0 ? 'done' : `FAILED (exit ${code})`} in ${seconds.toFixed(0)} s`);
}
const total = (performance.now() - started) / 1_000;
const summary = [
	`# npm run bench${smoke ? ' --smoke' : ''}: ${new Date().toISOString()}, ${total.toFixed(0)} s in all`,
	'',
	...report.flatMap((r) => [
		`## ${r.suite}: ${r.seconds.toFixed(0)} s${r.code === 0 ? '' : ` (FAILED, exit ${r.code})`}`,
		'',
		r.table,
		'',
	]),
].join('\n');
fs.writeFileSync(path.join(repoRoot, 'bench', 'results', `summary${smoke ? '-smoke' : ''}.md`), summary);
console.log(
	`\n${report.map((r) => `${r.suite}: ${r.seconds.toFixed(0)} s`).join(', ')}; ${total.toFixed(0)} s in all`,
);
process.exit(report.every((r) => r.code === 0) ? 0 : 1);

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

/** Each suite, the script that runs it, and whether it has a smoke form. */
const suites = {
	load: 'bench/load.ts',
	'max-rate': 'bench/max-rate.ts',
	'room-memory': 'bench/room-memory.ts',
	cold: 'bench/cold-paths.ts',
	soak: 'bench/soak.ts',
} as const;
type Suite = keyof typeof suites;
const smoke = process.argv.includes('--smoke');
const names = (process.env.SUITES ?? Object.keys(suites).join(',')).split(',').map((s) => s.trim());
const unknown = names.filter((n) => !(n in suites));
if (unknown.length > 0) {
	console.error(`unknown suite ${unknown.join(', ')}: expected ${Object.keys(suites).join(', ')}`);
	process.exit(2);
}

const resultFile = (suite: Suite) =>
	path.join(
		repoRoot,
		'bench',
		'results',
		`${path.basename(suites[suite], '.ts')}${smoke ? '-smoke' : ''}.json`,
	);

const started = performance.now();
const report: { suite: Suite; seconds: number; code: number | null; table: string }[] = [];
for (const suite of names as Suite[]) {
	const t0 = performance.now();
	fs.rmSync(resultFile(suite), { force: true });
	console.log(`\n## ${suite} (${suites[suite]}${smoke ? ' --smoke' : ''})\n`);
	const child = spawn(process.execPath, [suites[suite], ...(smoke ? ['--smoke'] : [])], {
		cwd: repoRoot,
		stdio: 'inherit',
	});
	const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
	const seconds = (performance.now() - t0) / 1_000;
	let table: string;
	try {
		table = (JSON.parse(fs.readFileSync(resultFile(suite), 'utf8')) as { table?: string }).table ?? '';
	} catch {
		table = '(no results written)';
	}
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

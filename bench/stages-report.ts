/**
 * `npm run bench:stages -- <dir>/*.stages.json`: the stage reports of a run with BENCH_STAGES=<dir> (bench/stages.ts)
 * as one table, a column group per process: p50 / p90 / p99 of each stretch, in ms.
 */
import fs from 'node:fs';
import type { StagesReport } from './stages.ts';

function table(files: string[]): string {
	const reports = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as StagesReport);
	const names = [...new Set(reports.flatMap((r) => Object.keys(r.stretches)))];
	const head = reports.map((r) => `${r.target} (${r.pid}) p50 / p90 / p99`);
	const lines = [`| stretch, ms | ${head.join(' | ')} |`, `| --- |${reports.map(() => ' --- |').join('')}`];
	for (const name of names) {
		const cells = reports.map((r) => {
			const s = r.stretches[name];
			return s ? `${s.p50} / ${s.p90} / ${s.p99} (n ${s.n})` : '–';
		});
		lines.push(`| ${name} | ${cells.join(' | ')} |`);
	}
	return lines.join('\n');
}

const files = process.argv.slice(2);
if (files.length === 0) {
	console.error(
		'usage: npm run bench:stages -- <dir>/*.stages.json (written by a run with BENCH_STAGES=<dir>)',
	);
	process.exit(2);
}
console.log(table(files));

import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * `node bench/export-child.ts <export CLI flags>`: runs the export CLI in this process — the very
 * script `npm run export` runs, not a copy — and at exit writes `{exitCode, maxRssKb, seconds}` as
 * JSON to file descriptor 3, which the benchmark opens as a pipe. maxRSS is the kernel's peak
 * resident set size for this process, so a short spike between two samples cannot be missed.
 */
const cli = fileURLToPath(new URL('../server/export/cli.ts', import.meta.url));
const started = performance.now();

process.on('exit', (exitCode) => {
	const report = {
		exitCode,
		maxRssKb: process.resourceUsage().maxRSS,
		seconds: (performance.now() - started) / 1000,
	};
	fs.writeSync(3, `${JSON.stringify(report)}\n`);
});

process.argv = [process.argv[0] as string, cli, ...process.argv.slice(2)];
await import(cli);

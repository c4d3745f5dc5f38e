/**
 * `npm run check`: the static checks in turn, each on this Node, stopping at the first that fails.
 */
import { spawnSync } from 'node:child_process';

const steps: [string, string[]][] = [
	['svelte-kit sync', ['node_modules/@sveltejs/kit/svelte-kit.js', 'sync']],
	[
		'svelte-check',
		['node_modules/svelte-check/bin/svelte-check', '--tsconfig', './tsconfig.json', '--threshold', 'error'],
	],
	// svelte-check above covers the browser program (tsconfig.json); these are the Node ones.
	['tsc (server, scripts)', ['node_modules/typescript/bin/tsc', '--noEmit', '-p', 'server']],
	['tsc (tests, bench)', ['node_modules/typescript/bin/tsc', '--noEmit', '-p', 'tests']],
	['eslint', ['node_modules/eslint/bin/eslint.js', '.']],
	['prettier', ['node_modules/prettier/bin/prettier.cjs', '--check', '.']],
];

for (const [name, args] of steps) {
	const { status, error } = spawnSync(process.execPath, args, { stdio: 'inherit' });
	if (status !== 0) {
		process.stderr.write(`error: ${name} failed${error ? ` (${error.message})` : ''}\n`);
		process.exit(1);
	}
}

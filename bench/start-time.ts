/**
 * `npm run bench:start`: how long `npm start` takes until /healthz answers, with and without a client build of
 * the current sources, and whether two starts at once in one checkout both come up.
 *
 * 1. a first start: this checkout's build of the current sources is removed first, so the start builds it, and
 *    DATA_DIR is new, so it creates the database;
 * 2. five restarts (the build is up to date, the same DATA_DIR): each time and the median, against the first;
 * 3. ROUNDS (default 10) rounds of two `npm start` at once on two ports, each round with the build removed first,
 *    so that both race to build it: both must answer /healthz.
 *
 * Each start runs on the embedded PGlite and is stopped with SIGTERM before the next; each node of a pair has a
 * DATA_DIR of its own. Time is from spawning `npm start` to the first 200 from /healthz.
 */
import fs from 'node:fs';
import path from 'node:path';
import { inputsHash } from '../scripts/build.ts';
import { repoRoot, spawnServer } from '../tests/helpers/process.ts';
import { tmpDir } from '../tests/helpers/server.ts';

const rounds = Number(process.env.ROUNDS ?? 10);
const dataDirs: string[] = [];
const newDataDir = () => {
	const dir = tmpDir('start-bench');
	dataDirs.push(dir);
	return dir;
};
const buildDir = () => path.join(repoRoot, '.builds', inputsHash());

async function timedStart(dataDir = newDataDir()): Promise<{ ms: number; stop: () => Promise<void> }> {
	const started = performance.now();
	const server = spawnServer({ DATA_DIR: dataDir, PORT: '0' }, ['npm', 'start', '--silent']);
	const url = await server.ready;
	for (;;) {
		const ok = await fetch(`${url}/healthz`).then(
			(r) => r.ok,
			() => false,
		);
		if (ok) break;
		await new Promise((resolve) => setTimeout(resolve, 20));
	}
	const ms = performance.now() - started;
	return {
		ms,
		stop: async () => {
			server.proc.kill('SIGTERM');
			const code = await server.exited;
			if (code !== 0) throw new Error(`a server exited with ${code}:\n${server.output().slice(-2000)}`);
		},
	};
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

fs.rmSync(buildDir(), { recursive: true, force: true });
const dataDir = newDataDir();
const cold = await timedStart(dataDir);
await cold.stop();
console.log(`first start (builds the client, creates the database): ${seconds(cold.ms)}`);

// Restarts, as after a crash or a deploy of the same version: same sources, same DATA_DIR.
const warm: number[] = [];
for (let i = 0; i < 5; i++) {
	const start = await timedStart(dataDir);
	await start.stop();
	warm.push(start.ms);
}
const median = [...warm].sort((a, b) => a - b)[2] as number;
console.log(`restarts: ${warm.map(seconds).join(', ')}`);
console.log(
	`restart median ${seconds(median)} = ${((median / cold.ms) * 100).toFixed(0)}% of the first start`,
);

let bothUp = 0;
for (let round = 1; round <= rounds; round++) {
	fs.rmSync(buildDir(), { recursive: true, force: true });
	const pair = await Promise.allSettled([timedStart(), timedStart()]);
	const up = pair.filter((p) => p.status === 'fulfilled');
	for (const p of up) await p.value.stop();
	if (up.length === 2) bothUp++;
	else {
		const reasons = pair.flatMap((p) => (p.status === 'rejected' ? [String(p.reason)] : []));
		console.log(`round ${round}: ${up.length} of 2 came up:\n${reasons.join('\n')}`);
	}
	const times = up.map((p) => seconds(p.value.ms)).join(' and ');
	console.log(
		`round ${round}: two starts at once, build missing: ${up.length}/2 answered /healthz (${times})`,
	);
}
console.log(`two starts at once: both answered in ${bothUp} of ${rounds} rounds`);
for (const dir of dataDirs) fs.rmSync(dir, { recursive: true, force: true });
process.exit(bothUp === rounds ? 0 : 1);

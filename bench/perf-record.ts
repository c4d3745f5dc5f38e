/**
 * PERF_PROF=<dir>: Linux `perf` samples every target process on the CPU during the measured windows, kernel and
 * native code included, and names JavaScript frames through V8's jitdump (`--perf-prof`): what each function
 * costs, as `/proc` counts it. V8's own sampling profiler (CPU_PROF) leaves out much of that: on this machine its
 * profiles of ours at the goal-1 load held busy samples for 8 % of a core while the process used 23 % (perf: the
 * system calls' kernel work, V8's builtins and inline caches, Node's native stream code), so its shares overstate
 * what it does see (the collector, socket writes). Each process's samples end up in `<target>-<pid>.perf.txt`
 * (`perf script`), which `npm run bench:profile` reads like a `.cpuprofile`.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const perfDir = process.env.PERF_PROF ? path.resolve(process.env.PERF_PROF) : undefined;

if (perfDir) {
	try {
		execFileSync('perf', ['version'], { stdio: 'ignore' });
	} catch {
		throw new Error('PERF_PROF needs Linux perf on the PATH (Debian: apt-get install linux-perf)');
	}
	fs.mkdirSync(perfDir, { recursive: true });
}

/**
 * Node flags of every target under PERF_PROF: the jitdump of compiled code (written to the directory, read by
 * `perf inject`), and interpreted functions as frames of their own rather than one interpreter entry.
 */
export const perfNodeFlags = perfDir
	? ['--perf-prof', `--perf-prof-path=${perfDir}`, '--interpreted-frames-native-stack']
	: [];

/** How often perf samples a process on the CPU, per second (its cpu-clock event: each sample is ~1 ms on it). */
const SAMPLES_PER_SECOND = 999;

export interface PerfRecording {
	/** Stops sampling and writes `<target>-<pid>.perf.txt`; returns its path. */
	stop(): Promise<string>;
}

/** Starts sampling `pid` (and its threads) with call stacks; fails at once when perf cannot attach. */
export async function recordPerf(dir: string, target: string, pid: number): Promise<PerfRecording> {
	const base = path.join(dir, `${target}-${pid}`);
	const options = ['-e', 'cpu-clock', '-F', String(SAMPLES_PER_SECOND), '-g', '-k', '1'];
	const perf = spawn('perf', ['record', ...options, '-p', String(pid), '-o', `${base}.perf.data`], {
		stdio: ['ignore', 'ignore', 'pipe'],
	});
	let stderr = '';
	perf.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
	const exited = new Promise<number | null>((resolve) => perf.on('exit', (code) => resolve(code)));
	// perf reports a refusal (permissions, a process gone) at once; a running perf says nothing.
	const early = await Promise.race([
		exited,
		new Promise<'running'>((r) => setTimeout(() => r('running'), 500)),
	]);
	if (early !== 'running') throw new Error(`perf record of ${target} (${pid}) failed: ${stderr.trim()}`);
	return {
		stop: async () => {
			perf.kill('SIGINT');
			const code = await exited;
			if (!fs.existsSync(`${base}.perf.data`))
				throw new Error(`perf record of ${target} (${pid}) wrote nothing (exit ${code}): ${stderr.trim()}`);
			return writeSamples(base, pid);
		},
	};
}

/**
 * Names the JavaScript frames (perf inject --jit), prints every sample's stack, and removes what it read but the
 * process's jitdump, which it still writes to (a capacity run profiles each step): `removeJitDump` once it stopped.
 */
function writeSamples(base: string, pid: number): string {
	execFileSync('perf', ['inject', '--jit', '-i', `${base}.perf.data`, '-o', `${base}.jit.data`], {
		stdio: ['ignore', 'ignore', 'pipe'],
	});
	const text = execFileSync(
		'perf',
		['script', '-i', `${base}.jit.data`, '-F', 'comm,tid,period,ip,sym,dso'],
		{ maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] },
	);
	fs.writeFileSync(`${base}.perf.txt`, text);
	const dir = path.dirname(base);
	for (const file of fs.readdirSync(dir))
		if (file.startsWith(`jitted-${pid}-`)) fs.rmSync(path.join(dir, file));
	fs.rmSync(`${base}.perf.data`);
	fs.rmSync(`${base}.jit.data`);
	return `${base}.perf.txt`;
}

/** Removes the jitdump of a process that stopped. */
export function removeJitDump(pid: number): void {
	if (perfDir) fs.rmSync(path.join(perfDir, `jit-${pid}.dump`), { force: true });
}

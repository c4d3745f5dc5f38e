/**
 * The stage reports of `BENCH_STAGES=<dir>` (bench/harness.ts): each target process that times its stages writes
 * `<dir>/<target>-<pid>.stages.json` when it stops (ours: bench/stage-clock.ts; the seed's design: its INSERT).
 * `npm run bench:stages -- <dir>/*.stages.json` prints them (bench/stages-report.ts).
 */
import fs from 'node:fs';
import path from 'node:path';

export interface StretchSummary {
	n: number;
	mean: number;
	p50: number;
	p90: number;
	p99: number;
}

export interface StagesReport {
	target: string;
	pid: number;
	/** What one update spent between two stages, in ms: over the measured windows, or the whole run without them. */
	stretches: Record<string, StretchSummary>;
}

/**
 * Samples kept apart by the benchmarks' GC signal (SIGUSR2, sent right before the measured windows and right after
 * them): `samples()` gives what came between the last two signals, or everything without two.
 */
export class WindowedSamples<T> {
	#current: T[] = [];
	#measured: T[] | null = null;

	constructor() {
		process.on('SIGUSR2', () => {
			this.#measured = this.#current;
			this.#current = [];
		});
	}

	push(sample: T): void {
		this.#current.push(sample);
	}

	samples(): T[] {
		return this.#measured ?? this.#current;
	}
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

export function summarize(values: number[]): StretchSummary {
	const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
	const at = (p: number) =>
		round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN);
	const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
	return { n: sorted.length, mean: round(mean), p50: at(50), p90: at(90), p99: at(99) };
}

/** Writes this process's report into `dir`; returns the file. */
export function writeStages(dir: string, stretches: Record<string, number[]>): string {
	const target = process.env.BENCH_TARGET ?? 'target';
	const report: StagesReport = {
		target,
		pid: process.pid,
		stretches: Object.fromEntries(Object.entries(stretches).map(([name, v]) => [name, summarize(v)])),
	};
	fs.mkdirSync(dir, { recursive: true });
	const file = path.join(dir, `${target}-${process.pid}.stages.json`);
	fs.writeFileSync(file, JSON.stringify(report, null, 2));
	return file;
}

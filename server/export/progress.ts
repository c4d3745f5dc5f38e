import type { FileCopier } from './files.ts';

/** Bytes for people: 1.5 MB. */
function formatBytes(bytes: number): string {
	const units = ['B', 'kB', 'MB', 'GB', 'TB'];
	let value = bytes;
	let unit = 0;
	while (value >= 1000 && unit < units.length - 1) {
		value /= 1000;
		unit++;
	}
	return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/**
 * Rows done / total, percent and rate on one stderr line (and, with `--with-files`, the files copied so far),
 * redrawn at most every 100 ms so a fast export does not spend its time painting. Off a TTY it stays silent until
 * the summary, except that copying files (which can take long) notes how far it got every 10 seconds.
 */
export class Progress {
	#done = 0;
	#lastDraw = 0;
	#lastNote = performance.now();
	readonly #started = performance.now();
	readonly #total: number;
	readonly #stream: NodeJS.WriteStream | null;
	readonly #files: FileCopier | null;

	constructor(total: number, tty: NodeJS.WriteStream | null, files: FileCopier | null) {
		this.#total = total;
		this.#stream = tty;
		this.#files = files;
	}

	get rows() {
		return this.#done;
	}

	add(rows: number) {
		this.#done += rows;
		this.#tick();
	}

	/** After each file copied (or found missing). */
	file() {
		this.#tick();
		const now = performance.now();
		if (!this.#stream && now - this.#lastNote >= 10_000) {
			this.#lastNote = now;
			process.stderr.write(`export: ${this.#done} rows, ${this.#filesText()} so far\n`);
		}
	}

	/** A line of its own (a file that could not be copied), on a fresh line rather than over the bar. */
	note(line: string) {
		if (this.#stream && this.#lastDraw > 0) this.#stream.write('\r\x1b[K');
		process.stderr.write(`${line}\n`);
		this.#lastDraw = 0;
	}

	/** The final bar (on a TTY) and the summary: one line, and one more for the files. */
	finish(target: string) {
		const now = performance.now();
		if (this.#stream) {
			this.#draw(now);
			this.#stream.write('\n');
		}
		const seconds = ((now - this.#started) / 1000).toFixed(1);
		process.stderr.write(`Exported ${this.#done} rows to ${target} in ${seconds} s\n`);
		if (this.#files) {
			const { present, missing } = this.#files.stats;
			const notes = [
				...(present > 0 ? [`${present} already there`] : []),
				...(missing > 0 ? [`${missing} could not be copied (listed above)`] : []),
			];
			process.stderr.write(
				`Wrote ${this.#filesText()} to ${this.#files.dir}${notes.length > 0 ? `; ${notes.join(', ')}` : ''}\n`,
			);
		}
	}

	/** Leaves the cursor on a fresh line so an error message does not land on the bar. */
	abandon() {
		if (this.#stream && this.#lastDraw > 0) this.#stream.write('\n');
	}

	#filesText(): string {
		const { written, bytes } = (this.#files as FileCopier).stats;
		return `${written} ${written === 1 ? 'file' : 'files'} (${formatBytes(bytes)})`;
	}

	#tick() {
		const now = performance.now();
		if (this.#stream && now - this.#lastDraw >= 100) {
			this.#lastDraw = now;
			this.#draw(now);
		}
	}

	#draw(now: number) {
		const stream = this.#stream as NodeJS.WriteStream;
		// Rows mirrored while the export runs are exported too (keyset pagination), so done may pass total.
		const ratio = this.#total > 0 ? Math.min(1, this.#done / this.#total) : 1;
		const rate = Math.round(this.#done / Math.max((now - this.#started) / 1000, 0.001));
		const files = this.#files ? `, ${this.#filesText()}` : '';
		const text = ` ${String(Math.floor(ratio * 100)).padStart(3)}% ${this.#done}/${this.#total} rows ${rate} rows/s${files}`;
		const width = Math.max(10, Math.min(40, (stream.columns || 80) - text.length - 3));
		const filled = Math.round(ratio * width);
		stream.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]${text}\x1b[K`);
	}
}

/**
 * Runs at most `limit` tasks at once; the others wait their turn in order. For work that is fine one room at a
 * time but costly all at once (compactions: each loads, applies and encodes a whole room).
 */
export class Concurrency {
	readonly #limit: number;
	#running = 0;
	readonly #waiting: (() => void)[] = [];

	constructor(limit: number) {
		this.#limit = limit;
	}

	async run<T>(task: () => Promise<T>): Promise<T> {
		if (this.#running < this.#limit) this.#running++;
		else await new Promise<void>((resolve) => this.#waiting.push(resolve));
		try {
			return await task();
		} finally {
			// The slot passes straight to the next in line, or is freed.
			const next = this.#waiting.shift();
			if (next) next();
			else this.#running--;
		}
	}
}

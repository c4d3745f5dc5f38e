/**
 * Counts events per key in a fixed window. In memory and per node: enough to stop a flood from one
 * client; a cluster-wide budget would need Redis. Keys whose window has passed are dropped as the
 * limiter is used, so memory follows the number of active keys.
 */
export class RateLimiter {
	readonly #max: number;
	readonly #windowMs: number;
	#windows = new Map<string, { start: number; count: number }>();
	#lastSweep = 0;

	constructor(max: number, windowMs: number) {
		this.#max = max;
		this.#windowMs = windowMs;
	}

	/**
	 * Records `n` events for `key`. Returns 0 when they fit, or the milliseconds until the window
	 * resets when they do not (and then records nothing).
	 */
	take(key: string, n = 1, now = Date.now()): number {
		this.#sweep(now);
		let window = this.#windows.get(key);
		if (!window || now - window.start >= this.#windowMs) {
			window = { start: now, count: 0 };
			this.#windows.set(key, window);
		}
		if (window.count + n > this.#max) return window.start + this.#windowMs - now;
		window.count += n;
		return 0;
	}

	/** Milliseconds until `key` may act again, without recording anything (0 when it may now). */
	peek(key: string, now = Date.now()): number {
		const window = this.#windows.get(key);
		if (!window || now - window.start >= this.#windowMs || window.count < this.#max) return 0;
		return window.start + this.#windowMs - now;
	}

	reset(key: string): void {
		this.#windows.delete(key);
	}

	#sweep(now: number) {
		if (now - this.#lastSweep < this.#windowMs) return;
		this.#lastSweep = now;
		for (const [key, window] of this.#windows) {
			if (now - window.start >= this.#windowMs) this.#windows.delete(key);
		}
	}
}

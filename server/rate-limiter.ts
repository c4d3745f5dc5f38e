/**
 * One key's fixed window: the events counted since it began. A caller with one counter per object (a socket's
 * frame budget) keeps this on the object itself, with no key to hash and nothing to sweep.
 */
export class RateWindow {
	start = 0;
	count = 0;

	/**
	 * Records `n` events against `max` per `windowMs`. Returns 0 when they fit, or the milliseconds until the
	 * window resets when they do not (and then records nothing).
	 */
	take(max: number, windowMs: number, n = 1, now = Date.now()): number {
		if (now - this.start >= windowMs) {
			this.start = now;
			this.count = 0;
		}
		if (this.count + n > max) return this.start + windowMs - now;
		this.count += n;
		return 0;
	}
}

/**
 * Counts events per key in a fixed window. In memory and per node: enough to stop a flood from one
 * client; a cluster-wide budget would need Redis. Keys whose window has passed are dropped as the
 * limiter is used, so memory follows the number of active keys.
 */
export class RateLimiter {
	readonly #max: number;
	readonly #windowMs: number;
	#windows = new Map<string, RateWindow>();
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
		if (!window) {
			window = new RateWindow();
			this.#windows.set(key, window);
		}
		return window.take(this.#max, this.#windowMs, n, now);
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

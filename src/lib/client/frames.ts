/* When the browser has painted, or is idle: for work that must not stand in front of a first paint. */

/** Resolves after the next frame is painted; after 50 ms at most (a hidden tab paints no frames). */
export function afterPaint(): Promise<void> {
	return new Promise((resolve) => {
		const done = () => {
			clearTimeout(timer);
			resolve();
		};
		const timer = setTimeout(done, 50);
		requestAnimationFrame(() => setTimeout(done, 0));
	});
}

/**
 * Resolves when the browser is next idle (after the first paint of a start), after `timeoutMs` at most; where
 * there is no `requestIdleCallback`, after a short wait.
 */
export function whenIdle(timeoutMs = 500): Promise<void> {
	return new Promise((resolve) => {
		if (typeof requestIdleCallback === 'function')
			requestIdleCallback(() => resolve(), { timeout: timeoutMs });
		else setTimeout(resolve, 100);
	});
}

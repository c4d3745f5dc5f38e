/**
 * How big the long tests are. `npm test` runs the fuzzes, the hostile walk and the repeated cold opens at a size
 * that keeps a CI run within its 15 minutes; `npm run test:long` (TEST_LONG=1) runs them at the size their
 * documented figures were measured at, and the ones that pick a backend on both backends. The same tests and
 * assertions run either way: only counts change.
 */
export const longRun = process.env.TEST_LONG === '1' || Boolean(process.env.ALL_BACKENDS);

/**
 * `quick` in `npm test`, `long` in `npm run test:long`, or the positive integer in the environment variable
 * `override` when it is set (FUZZ_STEPS=20000 and the like, to replay or stretch one run).
 */
export function sized(quick: number, long: number, override: string): number {
	const raw = process.env[override];
	if (raw === undefined || raw === '') return longRun ? long : quick;
	const value = Number(raw);
	if (!Number.isSafeInteger(value) || value <= 0)
		throw new Error(`${override} must be a positive whole number, not ${JSON.stringify(raw)}`);
	return value;
}

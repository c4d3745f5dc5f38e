import { defineConfig } from 'vitest/config';
import SlowFirstSequencer from './tests/helpers/sequencer.ts';

/**
 * Files whose figures are latency ratios (a p99 with and without an attack): they run after everything else, one
 * at a time, so that another test file does not weigh on one phase of their measurement and not the other.
 */
const timed = ['tests/integration/update-fuzz.test.ts'];

export default defineConfig({
	test: {
		globalSetup: ['tests/helpers/global-setup.ts'],
		testTimeout: 60_000,
		hookTimeout: 120_000,
		pool: 'forks',
		maxWorkers: 2,
		reporters: ['default', './tests/helpers/summary-reporter.ts'],
		sequence: { sequencer: SlowFirstSequencer },
		projects: [
			{
				extends: true,
				test: {
					name: 'suite',
					include: ['tests/**/*.test.ts'],
					exclude: timed,
					isolate: false,
					sequence: { groupOrder: 0 },
				},
			},
			{
				extends: true,
				test: { name: 'timed', include: timed, fileParallelism: false, sequence: { groupOrder: 1 } },
			},
		],
	},
});

import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints the ten slowest files (where CI time goes) and one plain closing line, "N passed, N failed, N skipped", that
 * any CI log reader understands.
 */
export default class SummaryReporter implements Reporter {
	onTestRunEnd(modules: ReadonlyArray<TestModule>) {
		let passed = 0;
		let failed = 0;
		let skipped = 0;
		for (const module of modules) {
			for (const test of module.children.allTests()) {
				const state = test.result().state;
				if (state === 'passed') passed++;
				else if (state === 'failed') failed++;
				else skipped++;
			}
			// A file that failed outside its tests (an import, a beforeAll) counts as one failure.
			const failedTests = [...module.children.allTests()].some((t) => t.result().state === 'failed');
			if (module.state() === 'failed' && !failedTests) failed++;
		}
		const slowest = modules
			.map((m) => ({
				file: m.moduleId.replace(`${process.cwd()}/`, ''),
				seconds: m.diagnostic().duration / 1000,
			}))
			.sort((a, b) => b.seconds - a.seconds)
			.slice(0, 10);
		process.stdout.write('\nslowest files (seconds in tests and hooks):\n');
		for (const { file, seconds } of slowest)
			process.stdout.write(`  ${seconds.toFixed(1).padStart(7)}  ${file}\n`);
		process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
	}
}

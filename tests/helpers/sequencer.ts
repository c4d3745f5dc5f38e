import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Seconds each slow file took in a CI run (the summary reporter prints the slowest ten). A clean clone has no
 * Vitest cache, and without one Vitest starts the largest files first; a short file that runs for minutes then
 * starts last and runs alone while the other worker idles. Starting these first keeps both workers busy to the end.
 * The figures only order the files: keep them roughly current, exactness does not matter.
 */
const expectedSeconds: Record<string, number> = {
	'tests/e2e/chat.test.ts': 150,
	'tests/integration/process.test.ts': 130,
	'tests/e2e/live.test.ts': 115,
	'tests/e2e/notifications.test.ts': 85,
	'tests/e2e/history.test.ts': 80,
	'tests/e2e/open.test.ts': 80,
	'tests/integration/convergence-fuzz.test.ts': 70,
	'tests/integration/faults.test.ts': 65,
	'tests/e2e/pwa.test.ts': 65,
	'tests/integration/adversarial.test.ts': 60,
	'tests/integration/bench-smoke.test.ts': 55,
	'tests/integration/freeze.test.ts': 55,
	'tests/integration/hostile-http.test.ts': 50,
	'tests/e2e/attachments.test.ts': 50,
	'tests/integration/revocation.test.ts': 50,
	'tests/integration/storage.test.ts': 48,
	'tests/integration/rate-limit.test.ts': 40,
	'tests/integration/cluster.test.ts': 36,
	'tests/integration/export-cli.test.ts': 35,
	'tests/integration/tracing.test.ts': 30,
};

/** Vitest's order (projects in their group order; within one, the cache's or the size's), slow files first. */
export default class SlowFirstSequencer extends BaseSequencer {
	override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
		const base = await super.sort(files);
		const rank = new Map(base.map((spec, i) => [spec, i]));
		const weight = (spec: TestSpecification) =>
			expectedSeconds[path.relative(spec.project.config.root, spec.moduleId).split(path.sep).join('/')] ?? 0;
		return base.toSorted((a, b) => {
			const group = a.project.config.sequence.groupOrder - b.project.config.sequence.groupOrder;
			if (group !== 0 || a.project.name !== b.project.name) return (rank.get(a) ?? 0) - (rank.get(b) ?? 0);
			return weight(b) - weight(a) || (rank.get(a) ?? 0) - (rank.get(b) ?? 0);
		});
	}
}

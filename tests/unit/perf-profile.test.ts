import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { perfTree, type PerfTree } from '../../bench/perf-profile.ts';

/** Three samples as `perf script -F comm,tid,period,ip,sym,dso` prints them (leaf first), periods in ns. */
const samples = `MainThread 100    2000000 
	         1665d2b Builtins_LoadIC (/opt/node)
	    7f22e3548e1f JS:*'judge file:///app/server/collab/validation.ts:12:39 (/tmp/jitted-100-1.so)
	    7f22e3575362 JS:^ /app/node_modules/pg-pool/index.js:203:26 (/tmp/jitted-100-2.so)
	          a4ddc6 v8::internal::(anonymous namespace)::Invoke (/opt/node)
	         1638a97 uv_run (/opt/node)

MainThread 100    1000000 
	ffffffff8225f759 pvm_irq_enable ([kernel.kallsyms])
	          10a1b2 __GI___writev (/usr/lib/x86_64-linux-gnu/libc.so.6)
	    7f22e3636299 JS:+'Socket._writeGeneric node:net:1293:42 (/tmp/jitted-100-3.so)
	         1638a97 uv_run (/opt/node)

V8Worker 101    1000000 
	          d860b1 v8::internal::MarkCompactCollector::ProcessMarkingWorklist<0> (/opt/node)
`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-profile-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Each leaf's self ms, keyed by its path from the root, as `functionName url` per frame. */
function leaves(tree: PerfTree): Record<string, number> {
	const pathOf = (id: number): string[] => {
		const up = tree.parent.get(id);
		const { functionName, url } = tree.byId.get(id)?.callFrame ?? { functionName: '?', url: '' };
		return up === undefined ? [] : [...pathOf(up), `${functionName} ${url}`.trim()];
	};
	return Object.fromEntries([...tree.self].map(([id, ms]) => [pathOf(id).join(' > '), ms]));
}

describe('perf samples as a call tree', () => {
	it('books builtins to their JavaScript caller, names native places, and weighs samples by their period', () => {
		const file = path.join(dir, 'x.perf.txt');
		fs.writeFileSync(file, samples);
		expect(leaves(perfTree(file))).toEqual({
			'uv_run native:node native > v8::internal::(anonymous namespace)::Invoke native:V8 > /app/node_modules/pg-pool/index.js > judge file:///app/server/collab/validation.ts': 2,
			'uv_run native:node native > Socket._writeGeneric node:net > __GI___writev native:libc > pvm_irq_enable native:kernel': 1,
			'(thread V8Worker) > v8::internal::MarkCompactCollector::ProcessMarkingWorklist<0> native:garbage collector': 1,
		});
	});
});

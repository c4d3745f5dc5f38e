/**
 * Reads the samples `PERF_PROF` writes (`perf script -F comm,tid,period,ip,sym,dso`, bench/perf-record.ts) into the
 * call tree bench/profile-summary.ts reads a V8 CPU profile as: a node per call path, the ms of CPU its samples
 * stand for as its self time. JavaScript frames keep their function, file and line; V8's builtins (inline caches,
 * calls, trampolines) are left out of the paths, so their time is their JavaScript caller's, as V8's profiler
 * books it; other native frames are named by symbol, with a place: the kernel, the garbage collector, V8, Node
 * and libuv, libc. Threads other than the main one are a path of their own, under their name.
 */
import fs from 'node:fs';

interface Frame {
	functionName: string;
	url: string;
	lineNumber: number;
}

export interface PerfTree {
	self: Map<number, number>;
	byId: Map<number, { id: number; callFrame: Frame; children?: number[] }>;
	parent: Map<number, number>;
}

const gcSymbol =
	/^v8::internal::(Heap|GC|MemoryAllocator|PagedSpace|NewSpace|SemiSpace|RememberedSet)|MarkCompact|Marking|Scaveng|Sweep|Evacuat|MinorM/;

/** A frame of `perf script`: a JavaScript function (from the jitdump) or a native symbol with its place. */
function frameOf(symbol: string, dso: string): Frame | undefined {
	if (symbol.startsWith('JS:')) {
		// "JS:*'name file:///…/x.js:12:3", "JS:^ /…/y.js:4:1", "JS:+'URL node:internal/url:879:14"
		const body = symbol.slice(3).replace(/^[*~^+-]?'?/, '');
		const at = /^(.*?)\s*(\S+):(\d+):\d+$/.exec(body);
		if (!at) return { functionName: body, url: 'native:JavaScript', lineNumber: 0 };
		return { functionName: at[1] ?? '', url: at[2] ?? '', lineNumber: Number(at[3]) - 1 };
	}
	if (symbol.startsWith('Builtins_') || symbol.startsWith('Builtin:')) return undefined;
	const where = dso.includes('kernel')
		? 'kernel'
		: gcSymbol.test(symbol)
			? 'garbage collector'
			: /^v8::/.test(symbol)
				? 'V8'
				: /^(node::|uv_|uv__)/.test(symbol)
					? 'node native'
					: /libc|libstdc\+\+|ld-linux/.test(dso)
						? 'libc'
						: 'native';
	return { functionName: symbol || '[unknown]', url: `native:${where}`, lineNumber: -1 };
}

/** The call tree of a `.perf.txt`: self time in ms (each sample's period is the ns of CPU it stands for). */
export function perfTree(file: string): PerfTree {
	const byId: PerfTree['byId'] = new Map([[0, { id: 0, callFrame: frame('(root)'), children: [] }]]);
	const self = new Map<number, number>();
	const parent = new Map<number, number>();
	const childIds = new Map<string, number>();
	const childOf = (at: number, callFrame: Frame): number => {
		const key = `${at} ${callFrame.functionName} ${callFrame.url} ${callFrame.lineNumber}`;
		let id = childIds.get(key);
		if (id === undefined) {
			id = byId.size;
			childIds.set(key, id);
			byId.set(id, { id, callFrame, children: [] });
			byId.get(at)?.children?.push(id);
			parent.set(id, at);
		}
		return id;
	};
	for (const sample of fs.readFileSync(file, 'utf8').split(/\n(?=\S)/)) {
		const [head, ...lines] = sample.split('\n');
		const [thread, , period] = head?.trim().split(/\s+/) ?? [];
		if (!thread || !period) continue;
		const frames = lines
			.map((line) => /^\s*[0-9a-f]+\s+(.*)\s+\(([^)]*)\)\s*$/.exec(line))
			.flatMap((m) => (m ? [frameOf(m[1] as string, m[2] as string)].filter((f) => f !== undefined) : []))
			.reverse();
		if (thread !== 'MainThread') frames.unshift(frame(`(thread ${thread})`));
		let at = 0;
		for (const callFrame of frames) at = childOf(at, callFrame);
		self.set(at, (self.get(at) ?? 0) + Number(period) / 1e6);
	}
	return { self, byId, parent };
}

function frame(name: string): Frame {
	return { functionName: name, url: '', lineNumber: -1 };
}

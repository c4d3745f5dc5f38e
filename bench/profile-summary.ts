/**
 * `npm run bench:profile -- <a.cpuprofile> [<b.cpuprofile> …]`: where a server's CPU went, from the V8 CPU profiles
 * `CPU_PROF=<dir>` makes every benchmark target write (bench/harness.ts). One column per profile, side by side, so
 * a profile taken before a change reads against one taken after it in the same run.
 *
 * Self time is grouped by where the code lives: a package of node_modules, a file of this project, Node's own
 * internals, or V8's pseudo-frames (garbage collector, program). `--functions` lists the busiest functions too,
 * `--callers=<regexp>` the time spent inside (inclusive) functions whose name or file matches, by caller. Idle time
 * is left out of every share. `--per=<n>,<n>,…` divides each column by a count (deliveries in the window) to give
 * µs per delivery. `--stalls[=<n>]` lists each profile's n (5) longest stretches without an idle sample (what held
 * the event loop, and so the tail: a sweep over every socket, a GC, a backlog), with the call paths and functions
 * most of their samples were in.
 *
 * A `.heapprofile` (ALLOC_PROF=<dir>, bench/harness.ts) reads the same way, in bytes allocated instead of time:
 * "self" is what a function allocated itself, `--per` gives bytes per delivery. So does a `.perf.txt`
 * (PERF_PROF=<dir>, bench/perf-record.ts), in ms of CPU as Linux perf sampled it, kernel and native code included
 * (it has no idle samples, so no `--stalls`). One kind of profile per call.
 */
import fs from 'node:fs';
import path from 'node:path';
import { perfTree } from './perf-profile.ts';

interface ProfileNode {
	id: number;
	callFrame: { functionName: string; url: string; lineNumber: number };
	children?: number[];
}

interface CpuProfile {
	nodes: ProfileNode[];
	samples: number[];
	timeDeltas: number[];
}

/** V8's sampling heap profile: a tree of call frames, each with the bytes its samples stand for. */
interface HeapNode {
	id: number;
	callFrame: ProfileNode['callFrame'];
	selfSize: number;
	children: HeapNode[];
}

const args = process.argv.slice(2);
const files = args.filter((a) => !a.startsWith('--'));
const option = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const listFunctions = args.includes('--functions');
const callers = option('callers');
const per = option('per')?.split(',').map(Number);
const TOP = Number(option('top') ?? 25);
const stalls = args.includes('--stalls') ? 5 : option('stalls') === undefined ? 0 : Number(option('stalls'));
if (files.length === 0) {
	console.error(
		'usage: npm run bench:profile -- <a.cpuprofile|a.heapprofile> [<b…> …] [--functions] [--callers=<regexp>] [--per=<n>,…] [--top=<n>] [--stalls[=<n>]]',
	);
	process.exit(2);
}
if (!(stalls >= 0 && Number.isInteger(stalls))) {
	console.error('--stalls=<n> needs a whole number');
	process.exit(2);
}
const kinds = new Set(files.map((f) => /\.(cpuprofile|heapprofile|perf\.txt)$/.exec(f)?.[1] ?? 'unknown'));
if (kinds.size > 1 || kinds.has('unknown')) {
	console.error('one kind of profile at a time: .cpuprofile, .heapprofile or .perf.txt files');
	process.exit(2);
}
const alloc = kinds.has('heapprofile');
if (!kinds.has('cpuprofile') && stalls > 0) {
	console.error('--stalls reads V8 CPU profiles: heap profiles and perf samples have no idle timeline');
	process.exit(2);
}
if (per && (per.length !== files.length || per.some((n) => !(n > 0)))) {
	console.error(`--per needs one positive count per profile (${files.length})`);
	process.exit(2);
}

/** Where a frame's code lives: a package, a project file, node:internal, or V8's own frame. */
function place({ url, functionName }: ProfileNode['callFrame']): string {
	if (url === '') return `(${functionName.replace(/^\(|\)$/g, '')})`;
	if (url.startsWith('native:')) return `(${url.slice('native:'.length)})`;
	const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
	if (pkg) return pkg[1] as string;
	if (url.startsWith('node:')) return 'node:internal';
	const local = /\/(server|src|bench)\/(.*)$/.exec(url);
	return local ? `${local[1]}/${local[2]}` : path.basename(url);
}

/** A frame's function, where it lives and its line (none for V8's and native frames, which have none). */
const label = (frame: ProfileNode['callFrame']) =>
	`${frame.functionName || '(anonymous)'} ${place(frame)}${frame.lineNumber < 0 ? '' : `:${frame.lineNumber + 1}`}`;

/** Self and inclusive time (ms) per node of one profile. */
function times(profile: CpuProfile) {
	const self = new Map<number, number>();
	// A sample's time is the delta to the next sample.
	for (let i = 0; i < profile.samples.length; i++) {
		const dt = (profile.timeDeltas[i + 1] ?? 0) / 1_000;
		const id = profile.samples[i] as number;
		self.set(id, (self.get(id) ?? 0) + dt);
	}
	const byId = new Map(profile.nodes.map((n) => [n.id, n]));
	const parent = new Map<number, number>();
	for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
	return { self, byId, parent };
}

/** Bytes allocated per node of a heap profile, in the shape `times` gives a CPU profile's. */
function allocations(head: HeapNode) {
	const self = new Map<number, number>();
	const byId = new Map<number, ProfileNode>();
	const parent = new Map<number, number>();
	const walk = (node: HeapNode) => {
		self.set(node.id, node.selfSize);
		byId.set(node.id, { id: node.id, callFrame: node.callFrame, children: node.children.map((c) => c.id) });
		for (const child of node.children) {
			parent.set(child.id, node.id);
			walk(child);
		}
	};
	walk(head);
	return { self, byId, parent };
}

const columns = files.map((file) => {
	const parsed = file.endsWith('.perf.txt')
		? undefined
		: (JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile | { head: HeapNode });
	const { self, byId, parent } =
		parsed === undefined ? perfTree(file) : 'head' in parsed ? allocations(parsed.head) : times(parsed);
	const places = new Map<string, number>();
	const functions = new Map<string, number>();
	const inside = new Map<string, number>();
	let busy = 0;
	for (const [id, ms] of self) {
		const node = byId.get(id) as ProfileNode;
		if (node.callFrame.functionName === '(idle)') continue;
		busy += ms;
		const where = place(node.callFrame);
		places.set(where, (places.get(where) ?? 0) + ms);
		const fn = label(node.callFrame);
		functions.set(fn, (functions.get(fn) ?? 0) + ms);
		if (!callers) continue;
		// Inclusive time of matching frames: walk up to the outermost matching frame, charge its caller once.
		const pattern = new RegExp(callers);
		let outer: number | undefined;
		for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
			const frame = (byId.get(at) as ProfileNode).callFrame;
			if (pattern.test(frame.functionName) || pattern.test(frame.url)) outer = at;
		}
		if (outer === undefined) continue;
		const up = parent.get(outer);
		const key = `${label((byId.get(outer) as ProfileNode).callFrame)} ← ${up === undefined ? '(root)' : label((byId.get(up) as ProfileNode).callFrame)}`;
		inside.set(key, (inside.get(key) ?? 0) + ms);
	}
	return {
		file,
		busy,
		places,
		functions,
		inside,
		stalls: parsed === undefined || 'head' in parsed ? [] : longestStalls(parsed, byId, parent),
	};
});

interface Stall {
	startMs: number;
	ms: number;
	paths: Map<string, number>;
	leaves: Map<string, number>;
}

/** The `stalls` longest runs of consecutive non-idle samples, with the call paths (outermost 4 frames) inside them. */
function longestStalls(
	profile: CpuProfile,
	byId: Map<number, ProfileNode>,
	parent: Map<number, number>,
): Stall[] {
	if (stalls === 0) return [];
	const runs: Stall[] = [];
	let current: Stall | undefined;
	let at = 0;
	for (let i = 0; i < profile.samples.length; i++) {
		at += (profile.timeDeltas[i] ?? 0) / 1_000;
		const node = byId.get(profile.samples[i] as number) as ProfileNode;
		if (node.callFrame.functionName === '(idle)') {
			if (current) runs.push(current);
			current = undefined;
			continue;
		}
		current ??= { startMs: at, ms: 0, paths: new Map(), leaves: new Map() };
		current.ms = at - current.startMs + (profile.timeDeltas[i + 1] ?? 0) / 1_000;
		const frames: string[] = [];
		for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id))
			frames.unshift(label((byId.get(id) as ProfileNode).callFrame));
		const key = frames.slice(1, 5).join(' > ');
		current.paths.set(key, (current.paths.get(key) ?? 0) + 1);
		const leaf = label(node.callFrame);
		current.leaves.set(leaf, (current.leaves.get(leaf) ?? 0) + 1);
	}
	if (current) runs.push(current);
	return runs.sort((a, b) => b.ms - a.ms).slice(0, stalls);
}

const unit = alloc ? (per ? 'bytes allocated per count' : 'KB allocated') : per ? 'µs per count' : 'ms';
/** A column's value as printed: bytes (or KB) allocated, or µs (or ms) of CPU, per count when `--per` is given. */
function show(value: number, i: number): string {
	const count = per?.[i];
	if (alloc) return (count ? value / count : value / 1_024).toFixed(0);
	return count ? ((value * 1_000) / count).toFixed(1) : value.toFixed(0);
}
const shareOf = alloc ? 'all allocations' : 'busy time';

function table(title: string, pick: (c: (typeof columns)[number]) => Map<string, number>) {
	const total = new Map<string, number>();
	for (const c of columns) for (const [k, v] of pick(c)) total.set(k, (total.get(k) ?? 0) + v);
	const rows = [...total].sort((a, b) => b[1] - a[1]).slice(0, TOP);
	console.log(`\n${title} (${unit}; share of ${shareOf})\n`);
	console.log(`| | ${columns.map((c) => path.basename(c.file)).join(' | ')} |`);
	console.log(`| --- | ${columns.map(() => '---').join(' | ')} |`);
	for (const [key] of rows) {
		const cells = columns.map((c, i) => {
			const ms = pick(c).get(key) ?? 0;
			return `${show(ms, i)} (${((100 * ms) / c.busy).toFixed(1)} %)`;
		});
		console.log(`| ${key.replaceAll('|', '\\|')} | ${cells.join(' | ')} |`);
	}
}

console.log(
	`| ${alloc ? 'allocated' : 'busy'} (${unit}) | ${columns.map((c, i) => show(c.busy, i)).join(' | ')} |`,
);
const selfTitle = alloc ? 'Allocations' : 'Self time';
table(`${selfTitle} by place`, (c) => c.places);
if (listFunctions) table(`${selfTitle} by function`, (c) => c.functions);
if (callers) table(`${alloc ? 'Allocations' : 'Time'} inside /${callers}/, by caller`, (c) => c.inside);

const topOf = (counts: Map<string, number>, n: number) =>
	[...counts]
		.sort((a, b) => b[1] - a[1])
		.slice(0, n)
		.map(([key, samples]) => `    ${String(samples).padStart(4)}  ${key}`)
		.join('\n');
for (const column of columns) {
	if (column.stalls.length === 0) continue;
	console.log(`\nLongest stretches without an idle sample, ${path.basename(column.file)} (samples per path)`);
	for (const stall of column.stalls) {
		console.log(`\n  ${stall.ms.toFixed(1)} ms, ${(stall.startMs / 1_000).toFixed(2)} s into the profile`);
		console.log(topOf(stall.paths, 5));
		console.log('  busiest functions:');
		console.log(topOf(stall.leaves, 5));
	}
}

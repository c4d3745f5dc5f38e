/**
 * `npm run bench:profile -- <a.cpuprofile> [<b.cpuprofile> …]`: where a server's CPU went, from the V8 CPU profiles
 * `CPU_PROF=<dir>` makes every benchmark target write (bench/harness.ts). One column per profile, side by side, so
 * a profile taken before a change reads against one taken after it in the same run.
 *
 * Self time is grouped by where the code lives: a package of node_modules, a file of this project, Node's own
 * internals, or V8's pseudo-frames (garbage collector, program). `--functions` lists the busiest functions too,
 * `--callers=<regexp>` the time spent inside (inclusive) functions whose name or file matches, by caller. Idle time
 * is left out of every share. `--per=<n>,<n>,…` divides each column by a count (deliveries in the window) to give
 * µs per delivery.
 */
import fs from 'node:fs';
import path from 'node:path';

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

const args = process.argv.slice(2);
const files = args.filter((a) => !a.startsWith('--'));
const option = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const listFunctions = args.includes('--functions');
const callers = option('callers');
const per = option('per')?.split(',').map(Number);
const TOP = Number(option('top') ?? 25);
if (files.length === 0) {
	console.error(
		'usage: npm run bench:profile -- <a.cpuprofile> [<b.cpuprofile> …] [--functions] [--callers=<regexp>] [--per=<n>,…] [--top=<n>]',
	);
	process.exit(2);
}
if (per && (per.length !== files.length || per.some((n) => !(n > 0)))) {
	console.error(`--per needs one positive count per profile (${files.length})`);
	process.exit(2);
}

/** Where a frame's code lives: a package, a project file, node:internal, or V8's own frame. */
function place({ url, functionName }: ProfileNode['callFrame']): string {
	if (url === '') return `(${functionName.replace(/^\(|\)$/g, '')})`;
	const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
	if (pkg) return pkg[1] as string;
	if (url.startsWith('node:')) return 'node:internal';
	const local = /\/(server|src|bench)\/(.*)$/.exec(url);
	return local ? `${local[1]}/${local[2]}` : path.basename(url);
}

const label = (frame: ProfileNode['callFrame']) =>
	`${frame.functionName || '(anonymous)'} ${place(frame)}:${frame.lineNumber + 1}`;

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

const columns = files.map((file) => {
	const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
	const { self, byId, parent } = times(profile);
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
	return { file, busy, places, functions, inside };
});

const unit = per ? 'µs per count' : 'ms';
const show = (ms: number, i: number) =>
	per ? ((ms * 1_000) / (per[i] as number)).toFixed(1) : ms.toFixed(0);

function table(title: string, pick: (c: (typeof columns)[number]) => Map<string, number>) {
	const total = new Map<string, number>();
	for (const c of columns) for (const [k, v] of pick(c)) total.set(k, (total.get(k) ?? 0) + v);
	const rows = [...total].sort((a, b) => b[1] - a[1]).slice(0, TOP);
	console.log(`\n${title} (${unit}; share of busy time)\n`);
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

console.log(`| busy (${unit}) | ${columns.map((c, i) => show(c.busy, i)).join(' | ')} |`);
table('Self time by place', (c) => c.places);
if (listFunctions) table('Self time by function', (c) => c.functions);
if (callers) table(`Time inside /${callers}/, by caller`, (c) => c.inside);

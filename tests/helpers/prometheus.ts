/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4): every line must be a `# HELP`, a
 * `# TYPE` or a sample `name{label="value",…} number`, every sample must belong to a family declared by `# TYPE`
 * before it, and every family must have help text. Anything else throws, naming the line.
 */
export interface Sample {
	name: string;
	labels: Record<string, string>;
	value: number;
}

export interface Exposition {
	samples: Sample[];
	types: Map<string, string>;
	help: Map<string, string>;
	/** The value of the one sample with this name and these labels (all of them); undefined when absent. */
	value(name: string, labels?: Record<string, string>): number | undefined;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
const SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created', ''];

function parseValue(raw: string, line: string): number {
	// Go's ParseFloat, which Prometheus uses, takes these in any case (prom-client writes `Nan`).
	if (/^\+?inf(inity)?$/i.test(raw)) return Infinity;
	if (/^-inf(inity)?$/i.test(raw)) return -Infinity;
	if (/^nan$/i.test(raw)) return NaN;
	const value = Number(raw);
	if (raw.trim() === '' || Number.isNaN(value)) throw new Error(`not a number in: ${line}`);
	return value;
}

export function parsePrometheus(text: string): Exposition {
	if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
	const samples: Sample[] = [];
	const types = new Map<string, string>();
	const help = new Map<string, string>();
	for (const line of text.split('\n').slice(0, -1)) {
		if (line === '') continue;
		if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
			const [, kind, name, ...rest] = line.split(' ');
			if (!name || !NAME.test(name)) throw new Error(`bad metric name in: ${line}`);
			if (kind === 'HELP') help.set(name, rest.join(' '));
			else {
				const type = rest.join(' ');
				if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type))
					throw new Error(`unknown type in: ${line}`);
				if (types.has(name)) throw new Error(`type declared twice: ${line}`);
				types.set(name, type);
			}
			continue;
		}
		if (line.startsWith('#')) continue;
		const match = SAMPLE.exec(line);
		if (!match) throw new Error(`not a sample line: ${line}`);
		const name = match[1] as string;
		const labels: Record<string, string> = {};
		if (match[3]) {
			LABEL.lastIndex = 0;
			while (LABEL.lastIndex < match[3].length) {
				const at = LABEL.lastIndex;
				const label = LABEL.exec(match[3]);
				if (!label || label.index !== at) throw new Error(`bad labels in: ${line}`);
				labels[label[1] as string] = (label[2] as string).replace(/\\(.)/g, (_, c: string) =>
					c === 'n' ? '\n' : c,
				);
			}
		}
		const family = SUFFIXES.map((s) => (s && name.endsWith(s) ? name.slice(0, -s.length) : name)).find((f) =>
			types.has(f),
		);
		if (!family) throw new Error(`sample without a # TYPE line before it: ${line}`);
		if (!help.has(family)) throw new Error(`metric without help text: ${family}`);
		samples.push({ name, labels, value: parseValue(match[4] as string, line) });
	}
	return {
		samples,
		types,
		help,
		value(name, wanted = {}) {
			const found = samples.filter(
				(s) =>
					s.name === name &&
					Object.keys(s.labels).length === Object.keys(wanted).length &&
					Object.entries(wanted).every(([k, v]) => s.labels[k] === v),
			);
			if (found.length > 1)
				throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(wanted)}`);
			return found[0]?.value;
		},
	};
}

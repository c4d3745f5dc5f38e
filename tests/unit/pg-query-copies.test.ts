import { createRequire } from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';

/**
 * Our node-postgres patch (patches/pg+8.23.1.patch): each query copied its config with
 * `Object.defineProperties(Object.create(…), Object.getOwnPropertyDescriptors(config))` and each result built the
 * empty row its rows are spread from as a null-prototype object copied into a plain one: two calls into V8's
 * runtime per statement (1–2 µs each alone, ~15 µs each in the server's profiles at the goal-1 load, where every
 * message is one statement). A plain config is now copied with a spread, and the empty row is built plain unless a
 * column is named `__proto__`.
 */
const require = createRequire(import.meta.url);
const { normalizeQueryConfig } = require('pg/lib/utils.js') as {
	normalizeQueryConfig(config: object, values?: unknown, callback?: unknown): Record<string, unknown>;
};
const Result = require('pg/lib/result.js') as new () => {
	addFields(fields: { name: string; dataTypeID: number; format?: string }[]): void;
	parseRow(values: (string | null)[]): Record<string, unknown>;
};

const text = 25;

afterEach(() => {
	vi.restoreAllMocks();
});

describe('node-postgres query copies', () => {
	it('copy a plain config with a spread, and never change the caller’s', () => {
		const descriptors = vi.spyOn(Object, 'getOwnPropertyDescriptors');
		const config = { name: 'append', text: 'SELECT $1', values: [1] };
		const copy = normalizeQueryConfig(config, [2]);
		// Read before `expect`, which copies descriptors itself.
		const copies = descriptors.mock.calls.length;
		descriptors.mockRestore();
		expect(copies).toBe(0);
		expect(copy).toEqual({ name: 'append', text: 'SELECT $1', values: [2] });
		expect(config.values).toEqual([1]);
	});

	it('still copy a config of a class with its prototype and accessors', () => {
		class Submittable {
			text = 'SELECT 1';
			get name() {
				return 'named';
			}
		}
		const copy = normalizeQueryConfig(new Submittable());
		expect(Object.getPrototypeOf(copy)).toBe(Submittable.prototype);
		expect(copy.name).toBe('named');
		expect(copy.text).toBe('SELECT 1');
	});

	it('build the empty row plain, and keep a column named __proto__ a key', () => {
		const create = vi.spyOn(Object, 'create');
		const result = new Result();
		result.addFields([
			{ name: 'id', dataTypeID: text },
			{ name: 'constructor', dataTypeID: text },
		]);
		const row = result.parseRow(['a', null]);
		const created = create.mock.calls.length;
		create.mockRestore();
		expect(created).toBe(0);
		expect(row).toEqual({ id: 'a', constructor: null });
		expect(Object.getPrototypeOf(row)).toBe(Object.prototype);

		const hostile = new Result();
		hostile.addFields([
			{ name: 'id', dataTypeID: text },
			{ name: '__proto__', dataTypeID: text },
		]);
		const parsed = hostile.parseRow(['b', 'polluted']);
		expect(Object.keys(parsed)).toEqual(['id', '__proto__']);
		expect(Object.getOwnPropertyDescriptor(parsed, '__proto__')?.value).toBe('polluted');
		expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
	});
});

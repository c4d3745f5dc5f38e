import { describe, expect, it } from 'vitest';
import { compileFilter } from '../../src/lib/protocol/moderation.ts';

describe('the content filter', () => {
	const filter = compileFilter({ mode: 'mask', words: ['darn', 'heck', 'c++'] });

	it('finds listed words as whole words, in any case', () => {
		expect(filter.blocked('Well DARN it, what the heck')).toEqual(['darn', 'heck']);
		expect(filter.blocked('darning socks in Checkpoint')).toEqual([]);
		expect(filter.blocked('I write c++ daily')).toEqual(['c++']);
		expect(filter.blocked('ünheck and heckö are other words')).toEqual([]);
	});

	it('masks each listed word with as many asterisks as it has characters', () => {
		expect(filter.mask('Darn! heck.')).toBe('****! ****.');
		expect(filter.blocked(filter.mask('darn heck c++'))).toEqual([]);
	});

	it('does nothing when off', () => {
		const off = compileFilter({ mode: 'off', words: ['darn'] });
		expect(off.blocked('darn')).toEqual([]);
		expect(off.mask('darn')).toBe('darn');
	});
});

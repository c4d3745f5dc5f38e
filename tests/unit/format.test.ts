import { describe, expect, it } from 'vitest';
import { localSnippet, mentionParts, searchWords, snippetParts } from '../../src/lib/client/format.ts';

describe('mentions', () => {
	const members = new Set(['ana', 'ben.s', 'cara-x']);
	it('marks @names of members only, without case, and leaves a sentence end outside the name', () => {
		expect(mentionParts('hi @Ana and @nobody, thanks @ben.s. bye @cara-x-', members)).toEqual([
			{ text: 'hi ' },
			{ text: '@Ana', mention: 'ana' },
			{ text: ' and @nobody, thanks ' },
			{ text: '@ben.s', mention: 'ben.s' },
			{ text: '. bye ' },
			{ text: '@cara-x', mention: 'cara-x' },
			{ text: '-' },
		]);
	});
	it('ignores e-mail addresses and a lone @', () => {
		expect(mentionParts('mail ana@ana.org @ @@ana', members)).toEqual([{ text: 'mail ana@ana.org @ @@ana' }]);
	});
});

describe('search snippets', () => {
	it('splits a snippet into text and hits, never treating its text as HTML', () => {
		expect(snippetParts('a <mark>hit</mark> <b>x</b>')).toEqual([
			{ text: 'a ', hit: false },
			{ text: 'hit', hit: true },
			{ text: ' <b>x</b>', hit: false },
		]);
	});
	it('marks every word of a local search in one pass', () => {
		const words = searchWords('"Mark" plan');
		expect(words).toEqual(['mark', 'plan']);
		expect(localSnippet('the Mark plan', words)).toBe('the <mark>Mark</mark> <mark>plan</mark>');
	});
});

import { describe, expect, it } from 'vitest';
import {
	isPlain,
	isSafeHref,
	parseMarkdown,
	plainText,
	richText,
	type Block,
	type Inline,
} from '../../src/lib/client/rich-text.ts';

const members = new Set(['ana', 'bob']);
const p = (...children: Inline[]): Block => ({ kind: 'p', children });
const text = (t: string): Inline => ({ kind: 'text', text: t });

/** Every href in a tree, to check that none is unsafe whatever the input. */
function hrefs(blocks: Block[]): string[] {
	const fromInline = (nodes: Inline[]): string[] =>
		nodes.flatMap((n) =>
			n.kind === 'link' ? [n.href, ...fromInline(n.children)] : 'children' in n ? fromInline(n.children) : [],
		);
	return blocks.flatMap((b) =>
		b.kind === 'p'
			? fromInline(b.children)
			: b.kind === 'quote'
				? hrefs(b.children)
				: b.kind === 'list'
					? b.items.flatMap(hrefs)
					: [],
	);
}

describe('rich text', () => {
	it('renders the subset: bold, italic, strike, code, code blocks with a language, quotes, lists', () => {
		expect(richText('**b** _i_ ~~s~~ `c`', members)).toEqual([
			p(
				{ kind: 'strong', children: [text('b')] },
				text(' '),
				{ kind: 'em', children: [text('i')] },
				text(' '),
				{ kind: 's', children: [text('s')] },
				text(' '),
				{ kind: 'code', text: 'c' },
			),
		]);
		expect(richText('```ts\nconst a = 1;\n  b\n```', members)).toEqual([
			{ kind: 'pre', lang: 'ts', text: 'const a = 1;\n  b' },
		]);
		expect(richText('> quoted\n\n- one\n- two\n\n3. three', members)).toEqual([
			{ kind: 'quote', children: [p(text('quoted'))] },
			{ kind: 'list', ordered: false, start: 1, items: [[p(text('one'))], [p(text('two'))]] },
			{ kind: 'list', ordered: true, start: 3, items: [[p(text('three'))]] },
		]);
	});

	it('links http, https and mailto, bare URLs and e-mail addresses, and nothing else', () => {
		expect(
			richText('see https://example.com/a?b=1 or [docs](http://x.org/d) or ana@example.com', members),
		).toEqual([
			p(
				text('see '),
				{ kind: 'link', href: 'https://example.com/a?b=1', children: [text('https://example.com/a?b=1')] },
				text(' or '),
				{ kind: 'link', href: 'http://x.org/d', children: [text('docs')] },
				text(' or '),
				{ kind: 'link', href: 'mailto:ana@example.com', children: [text('ana@example.com')] },
			),
		]);
		for (const bad of [
			'[x](javascript:alert(1))',
			'[x](JaVaScRiPt:alert(1))',
			'[x](data:text/html;base64,PHNjcmlwdD4=)',
			'[x](vbscript:msgbox)',
			'[x](/rooms/abc)',
			'[x](//evil.example)',
			'<javascript:alert(1)>',
			'ftp://files.example.com',
			'[x](file:///etc/passwd)',
			'readme.md and www.example.com',
		]) {
			const blocks = richText(bad, members);
			expect(hrefs(blocks), bad).toEqual([]);
			expect(plainText(bad).length, bad).toBeGreaterThan(0);
		}
		for (const href of ['https://a.b', 'http://a.b/c', 'mailto:a@b.c']) expect(isSafeHref(href)).toBe(true);
		for (const href of ['javascript:x', ' data:x', '/a', '//a.b', 'ftp://a.b', ''])
			expect(isSafeHref(href)).toBe(false);
	});

	it('keeps HTML as text: a payload is words, not elements', () => {
		const payload = '<script>alert(1)</script> <img src=x onerror=alert(1)> &lt;b&gt;';
		expect(richText(payload, members)).toEqual([p(text(payload))]);
	});

	it('finds mentions in formatted text, but not in code or link text', () => {
		expect(richText('**hi @ana** `@bob` [@bob](https://x.y) @bob', members)).toEqual([
			p(
				{ kind: 'strong', children: [text('hi '), { kind: 'mention', text: '@ana', name: 'ana' }] },
				text(' '),
				{ kind: 'code', text: '@bob' },
				text(' '),
				{ kind: 'link', href: 'https://x.y', children: [text('@bob')] },
				text(' '),
				{ kind: 'mention', text: '@bob', name: 'bob' },
			),
		]);
	});

	it('keeps line breaks, and a plain message skips the parser with the same result', () => {
		expect(richText('one\ntwo', members)).toEqual([p(text('one'), { kind: 'br' }, text('two'))]);
		// The fast path and the parser agree on text without markup.
		const alphabet = 'ab @ana.,!?-#=+()&;:"\'%$0123456789 é漢\t';
		let seed = 7;
		const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
		let fast = 0;
		for (let n = 0; n < 2000; n++) {
			const length = 1 + Math.floor(random() * 30);
			const s = Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
			if (!isPlain(s)) continue;
			fast++;
			expect(richText(s, members), s).toEqual(parseMarkdown(s, members));
		}
		expect(fast).toBeGreaterThan(1000);
	});

	it('parses a message once for a room whose set of names is rebuilt with the same names', () => {
		const text = '**cached** for @ana';
		const first = richText(text, new Set(['ana', 'bob']));
		expect(richText(text, new Set(['bob', 'ana']))).toBe(first);
		expect(richText(text, new Set(['bob']))).not.toBe(first);
	});

	it('gives previews and notifications the words without the markup', () => {
		expect(plainText('**Deploy** done:\n- `api` ok\n- [logs](https://x.y)')).toBe('Deploy done: api ok logs');
		expect(plainText('   ')).toBe('');
	});

	it('survives deep nesting and long input without blowing the stack', () => {
		const deep = `${'> '.repeat(500)}x ${'**'.repeat(200)}y${'**'.repeat(200)} ${'['.repeat(1000)}`;
		expect(() => richText(deep, members)).not.toThrow();
		expect(plainText(deep)).toContain('x');
		// Past the parser's depth markdown-it drops text: nested prefixes of every kind and depth keep every word.
		const pieces = ['>', '> ', '- ', '* ', '1. ', '2) ', '  ', '\t', '    '];
		let seed = 11;
		const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
		for (let n = 0; n < 3000; n++) {
			const prefix = Array.from(
				{ length: Math.floor(random() * 24) },
				() => pieces[Math.floor(random() * 9)],
			);
			const second = Array.from(
				{ length: Math.floor(random() * 24) },
				() => pieces[Math.floor(random() * 9)],
			);
			const message = `${prefix.join('')}word1 **b**\n${second.join('')}word2`;
			const words = plainText(message);
			expect(words, JSON.stringify(message)).toContain('word1');
			expect(words, JSON.stringify(message)).toContain('word2');
		}
	});
});

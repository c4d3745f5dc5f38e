/**
 * Message text as a small, safe Markdown subset: **bold**, _italic_, ~~strike~~, `code`, fenced code blocks with a
 * language, > quotes, lists, and links (http, https and mailto only; bare URLs and e-mail addresses are linked too).
 *
 * markdown-it parses with raw HTML off; its tokens become a plain tree of a few node kinds that `RichText.svelte`
 * renders element by element, as text: nothing a sender writes reaches the page as HTML, so it cannot run or style
 * anything outside its message. `@name` mentions are found in text outside code and links.
 */

import MarkdownIt from 'markdown-it';
import type { Token } from 'markdown-it';
import { mentionParts } from './format.ts';

export type Inline =
	| { kind: 'text'; text: string }
	| { kind: 'mention'; text: string; name: string }
	| { kind: 'strong' | 'em' | 's'; children: Inline[] }
	| { kind: 'code'; text: string }
	| { kind: 'link'; href: string; children: Inline[] }
	| { kind: 'br' };

export type Block =
	| { kind: 'p'; children: Inline[] }
	| { kind: 'quote'; children: Block[] }
	| { kind: 'list'; ordered: boolean; start: number; items: Block[][] }
	| { kind: 'pre'; lang: string; text: string };

const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

/** Whether `href` may be a link: absolute, and http, https or mailto. */
export function isSafeHref(href: string): boolean {
	try {
		return SAFE_PROTOCOLS.has(new URL(href).protocol);
	} catch {
		return false;
	}
}

const MAX_NESTING = 20;
const md = MarkdownIt('zero', { html: false, linkify: true, breaks: true, maxNesting: MAX_NESTING }).enable([
	'emphasis',
	'strikethrough',
	'backticks',
	'escape',
	'newline',
	'fence',
	'blockquote',
	'list',
	'link',
	'autolink',
	'linkify',
]);
md.validateLink = isSafeHref;
// Scheme links and e-mail addresses are linked; "readme.md" or "www.example.com" in a sentence stays text (fuzzy
// links would turn file names with a country-code ending into links).
md.linkify.set({ fuzzyLink: false, fuzzyEmail: true });

/**
 * Anything that can make Markdown differ from plain text: the fast path skips the parser when none of these is in a
 * message (most chat messages), and gives the same tree the parser would.
 */
const MARKUP = /[*_~`[\]\\<\n]|:\/\/|mailto:|^\s*(?:[-+>]|\d+[.)])|\S@[^\s@]+\.\w/i;

/**
 * Parsed messages per list of member names (the last CACHE_ROOMS lists), each the last CACHE_SIZE contents used.
 * A room's page builds a new set of names whenever its summary changes; the key of a set is worked out once, not
 * once per message rendered.
 */
const caches = new Map<string, Map<string, Block[]>>();
const keys = new WeakMap<ReadonlySet<string>, string>();
const CACHE_ROOMS = 20;
const CACHE_SIZE = 500;

function cacheFor(memberNames: ReadonlySet<string>): Map<string, Block[]> {
	let key = keys.get(memberNames);
	if (key === undefined) keys.set(memberNames, (key = [...memberNames].sort().join('\n')));
	let cache = caches.get(key);
	if (cache) caches.delete(key);
	caches.set(key, (cache ??= new Map()));
	if (caches.size > CACHE_ROOMS) caches.delete(caches.keys().next().value as string);
	return cache;
}

/** `content` as blocks to render; mentions are the members' names in lower case. Cached by names and content. */
export function richText(content: string, memberNames: ReadonlySet<string>): Block[] {
	const cache = cacheFor(memberNames);
	const hit = cache.get(content);
	if (hit) {
		cache.delete(content);
		cache.set(content, hit);
		return hit;
	}
	const blocks = parse(content, memberNames);
	cache.set(content, blocks);
	if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string);
	return blocks;
}

function parse(content: string, memberNames: ReadonlySet<string>): Block[] {
	const trimmed = content.trim();
	if (!trimmed) return [];
	if (isPlain(trimmed)) return [{ kind: 'p', children: withMentions(trimmed, memberNames) }];
	if (tooDeep(content)) return [asWritten(trimmed, memberNames)];
	return parseMarkdown(content, memberNames);
}

/**
 * Whether a line starts with enough quote and list markers to nest deeper than the parser goes: past `maxNesting`
 * markdown-it drops the rest of the text, so such a message is shown as written instead. Each level of nesting takes
 * at least one character of a line's prefix (a tab four), and a level takes at most two of the parser's, so a prefix
 * under `maxNesting / 2 + 6` columns cannot reach it.
 */
function tooDeep(content: string): boolean {
	for (const [prefix] of content.matchAll(/^[ \t>*+\-0-9.)]+/gm)) {
		const columns = prefix.length + 3 * (prefix.split('\t').length - 1);
		if (columns > MAX_NESTING / 2 + 6) return true;
	}
	return false;
}

/** The text as written: one paragraph, its line breaks kept, mentions found. */
function asWritten(text: string, memberNames: ReadonlySet<string>): Block {
	const children = text
		.split('\n')
		.flatMap((line, i): Inline[] => [
			...(i > 0 ? [{ kind: 'br' as const }] : []),
			...withMentions(line, memberNames),
		]);
	return { kind: 'p', children: mergeText(children.filter((n) => n.kind !== 'text' || n.text)) };
}

/** Whether `text` has nothing Markdown would read: it is one paragraph of itself. */
export function isPlain(text: string): boolean {
	return !MARKUP.test(text);
}

/** `content` through the parser, without the fast path (exported to test that both agree). */
export function parseMarkdown(content: string, memberNames: ReadonlySet<string>): Block[] {
	return new BlockReader(md.parse(content, {}), memberNames).blocks(null);
}

function withMentions(text: string, memberNames: ReadonlySet<string>): Inline[] {
	if (!text.includes('@')) return [{ kind: 'text', text }];
	return mentionParts(text, memberNames).map((part) =>
		part.mention
			? { kind: 'mention', text: part.text, name: part.mention }
			: { kind: 'text', text: part.text },
	);
}

/** Reads markdown-it's flat block tokens into nested blocks. */
class BlockReader {
	#i = 0;
	readonly tokens: Token[];
	readonly memberNames: ReadonlySet<string>;
	constructor(tokens: Token[], memberNames: ReadonlySet<string>) {
		this.tokens = tokens;
		this.memberNames = memberNames;
	}

	/** Blocks up to the closing token `close` (or the end). */
	blocks(close: string | null): Block[] {
		const out: Block[] = [];
		while (this.#i < this.tokens.length) {
			const token = this.tokens[this.#i++]!;
			if (token.type === close) break;
			const block = this.#block(token);
			if (block) out.push(block);
		}
		return out;
	}

	#block(token: Token): Block | null {
		switch (token.type) {
			case 'paragraph_open': {
				const inline = this.tokens[this.#i]?.type === 'inline' ? this.tokens[this.#i++]! : null;
				this.#i++; // paragraph_close
				return { kind: 'p', children: inlines(inline?.children ?? [], this.memberNames) };
			}
			case 'fence':
				return {
					kind: 'pre',
					lang: token.info.trim().split(/\s+/)[0]!.slice(0, 40),
					text: token.content.replace(/\n$/, ''),
				};
			case 'blockquote_open':
				return { kind: 'quote', children: this.blocks('blockquote_close') };
			case 'bullet_list_open':
			case 'ordered_list_open': {
				const ordered = token.type === 'ordered_list_open';
				const start = Number(token.attrGet('start') ?? 1);
				const close = ordered ? 'ordered_list_close' : 'bullet_list_close';
				const items: Block[][] = [];
				while (this.#i < this.tokens.length) {
					const next = this.tokens[this.#i++]!;
					if (next.type === close) break;
					if (next.type === 'list_item_open') items.push(this.blocks('list_item_close'));
				}
				return { kind: 'list', ordered, start: Number.isSafeInteger(start) ? start : 1, items };
			}
			case 'inline':
				return { kind: 'p', children: inlines(token.children ?? [], this.memberNames) };
			default:
				return null;
		}
	}
}

const MARKS = { strong_open: 'strong', em_open: 'em', s_open: 's' } as const;

/** markdown-it's inline tokens as nested inlines: an `_open` token nests what follows up to its `_close`. */
function inlines(tokens: Token[], memberNames: ReadonlySet<string>): Inline[] {
	const root: Inline[] = [];
	// `spill`: a link refused here (the parser already refuses them: a second lock on the same door) keeps its text.
	const stack: { children: Inline[]; spill: boolean }[] = [{ children: root, spill: false }];
	const top = () => stack[stack.length - 1]!.children;
	let inLink = 0;
	for (const token of tokens) {
		switch (token.type) {
			case 'text':
			case 'text_special':
				if (!token.content) break;
				if (inLink) top().push({ kind: 'text', text: token.content });
				else top().push(...withMentions(token.content, memberNames));
				break;
			case 'softbreak':
			case 'hardbreak':
				top().push({ kind: 'br' });
				break;
			case 'code_inline':
				top().push({ kind: 'code', text: token.content });
				break;
			case 'strong_open':
			case 'em_open':
			case 's_open': {
				const children: Inline[] = [];
				top().push({ kind: MARKS[token.type], children });
				stack.push({ children, spill: false });
				break;
			}
			case 'link_open': {
				const href = String(token.attrGet('href') ?? '');
				const children: Inline[] = [];
				const safe = isSafeHref(href);
				if (safe) top().push({ kind: 'link', href, children });
				stack.push({ children, spill: !safe });
				inLink++;
				break;
			}
			case 'strong_close':
			case 'em_close':
			case 's_close':
			case 'link_close': {
				if (token.type === 'link_close') inLink--;
				const closed = stack.length > 1 ? stack.pop()! : null;
				if (closed?.spill) top().push(...closed.children);
				break;
			}
			default:
				if (token.content) top().push({ kind: 'text', text: token.content });
		}
	}
	return mergeText(root);
}

/** Adjacent text nodes as one (the mention split and escapes leave several). */
function mergeText(nodes: Inline[]): Inline[] {
	const out: Inline[] = [];
	for (const node of nodes) {
		const last = out[out.length - 1];
		if (node.kind === 'text' && last?.kind === 'text')
			out[out.length - 1] = { kind: 'text', text: last.text + node.text };
		else out.push(node);
	}
	return out;
}

/** The text of blocks without markup, for previews, reply quotes and notifications: one line, spaces collapsed. */
export function plainText(content: string): string {
	const blocks = richText(content, EMPTY);
	return blocksText(blocks).replace(/\s+/g, ' ').trim();
}

const EMPTY: ReadonlySet<string> = new Set();

function blocksText(blocks: Block[]): string {
	return blocks
		.map((block) => {
			switch (block.kind) {
				case 'p':
					return inlineText(block.children);
				case 'pre':
					return block.text;
				case 'quote':
					return blocksText(block.children);
				case 'list':
					return block.items.map((item) => blocksText(item)).join(' ');
			}
		})
		.join(' ');
}

function inlineText(nodes: Inline[]): string {
	return nodes
		.map((node) => {
			switch (node.kind) {
				case 'text':
				case 'mention':
				case 'code':
					return node.text;
				case 'br':
					return ' ';
				default:
					return inlineText(node.children);
			}
		})
		.join('');
}

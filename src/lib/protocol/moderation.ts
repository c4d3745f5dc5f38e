import { z } from './zod.ts';

/**
 * The content filter, shared by server and client so both judge text the same way. A listed word
 * matches case-insensitively as a whole word (letters and digits around it end the match).
 *
 * - `reject`: a message containing a listed word is refused; the client says so before sending.
 * - `mask`: the client replaces each listed word with asterisks before writing; the server refuses
 *   anything still unmasked, so the stored history is masked too.
 */
export const contentFilterConfig = z.strictObject({
	mode: z.enum(['off', 'reject', 'mask']),
	words: z.array(z.string().min(1).max(64)).max(10_000),
});
export type ContentFilterConfig = z.infer<typeof contentFilterConfig>;

const escape = (word: string) => word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function pattern(words: readonly string[]): RegExp | null {
	if (words.length === 0) return null;
	return new RegExp(`(?<![\\p{L}\\p{N}])(?:${words.map(escape).join('|')})(?![\\p{L}\\p{N}])`, 'giu');
}

/** A compiled filter: `blocked` lists the listed words found in a text, `mask` hides them. */
export function compileFilter(config: ContentFilterConfig) {
	const re = config.mode === 'off' ? null : pattern(config.words);
	return {
		mode: config.mode,
		blocked(text: string): string[] {
			if (!re) return [];
			return [...new Set(Array.from(text.matchAll(re), (m) => m[0].toLowerCase()))];
		},
		mask(text: string): string {
			return re ? text.replace(re, (m) => '*'.repeat([...m].length)) : text;
		},
	};
}
export type ContentFilter = ReturnType<typeof compileFilter>;

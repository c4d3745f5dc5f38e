import { limits } from './limits.ts';

/** The characters of a user name, as the body of a RegExp character class: letters, digits, `_`, `.`, `-`. */
export const NAME_CHARS = 'A-Za-z0-9_.-';

/** Every `@name` in a text: group 1 is what precedes the `@`, group 2 the name as written. */
export function mentionPattern(): RegExp {
	return new RegExp(`(^|[^\\w@])@([${NAME_CHARS}]{${limits.nameMin},${limits.nameMax}})`, 'g');
}

/**
 * The name a written mention stands for, or null: `isName` is asked about the name in lower case, as written and
 * then without each trailing `.` or `-` (a sentence may end right after a name: "thanks @ana." mentions ana).
 */
export function mentionedName(written: string, isName: (lower: string) => boolean): string | null {
	let candidate = written;
	for (;;) {
		if (isName(candidate.toLowerCase())) return candidate;
		if (!/[.-]$/.test(candidate)) return null;
		candidate = candidate.slice(0, -1);
	}
}

import { commonPasswords } from './common-passwords.ts';
import { limits } from './limits.ts';

/**
 * The rules a new password must meet, as the server applies them and as the forms show them while it is typed
 * (NIST 800-63B: a length, no composition rules, and nothing easy to guess). One list, so what people read is
 * what is checked.
 */
export interface PasswordRule {
	id: 'length' | 'name' | 'common';
	/** The rule, as the form lists it. */
	text: string;
	/** What to do when it is not met, as an error says it. */
	problem: string;
	ok: boolean;
}

export function passwordRules(password: string, name: string): PasswordRule[] {
	const lower = password.toLowerCase();
	const ownName = name.trim().toLowerCase();
	return [
		{
			id: 'length',
			text: `${limits.passwordMin} to ${limits.passwordMax} characters`,
			problem:
				password.length < limits.passwordMin
					? `Use at least ${limits.passwordMin} characters.`
					: `Use at most ${limits.passwordMax} characters.`,
			ok: password.length >= limits.passwordMin && password.length <= limits.passwordMax,
		},
		{
			id: 'name',
			text: 'Does not contain your name',
			problem: 'Choose a password that does not contain your name.',
			ok: ownName.length < limits.nameMin || !lower.includes(ownName),
		},
		{
			id: 'common',
			text: 'Not a common password or one character repeated',
			problem: 'That password is too common. Choose a longer or less predictable one.',
			ok: !commonPasswords.has(lower) && !/^(.)\1+$/.test(password),
		},
	];
}

/** The first rule `password` breaks, as a sentence for an error; null when it meets them all. */
export function passwordProblem(password: string, name: string): string | null {
	return passwordRules(password, name).find((rule) => !rule.ok)?.problem ?? null;
}

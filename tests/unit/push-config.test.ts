import webpush from 'web-push';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../server/config.ts';

const keys = webpush.generateVAPIDKeys();
const other = webpush.generateVAPIDKeys();

function failure(env: Record<string, string>): string {
	try {
		parseConfig(env);
	} catch (error) {
		if (error instanceof ConfigError) return error.message;
		throw error;
	}
	throw new Error('expected the config to be refused');
}

describe('Web Push configuration (VAPID_*)', () => {
	it('defaults to no fixed keys and the mailto:admin@localhost subject', () => {
		const config = parseConfig({});
		expect(config.VAPID_PUBLIC_KEY).toBeUndefined();
		expect(config.VAPID_PRIVATE_KEY).toBeUndefined();
		expect(config.VAPID_SUBJECT).toBe('mailto:admin@localhost');
	});

	it('takes a matching key pair and an https: or mailto: subject', () => {
		const config = parseConfig({
			VAPID_PUBLIC_KEY: keys.publicKey,
			VAPID_PRIVATE_KEY: keys.privateKey,
			VAPID_SUBJECT: 'https://chat.example.com/contact',
		});
		expect(config.VAPID_PUBLIC_KEY).toBe(keys.publicKey);
		expect(parseConfig({ VAPID_SUBJECT: 'mailto:ops@example.com' }).VAPID_SUBJECT).toBe(
			'mailto:ops@example.com',
		);
	});

	it('stops boot with one line naming the variable for half a pair, a mismatched pair or a bad value', () => {
		expect(failure({ VAPID_PUBLIC_KEY: keys.publicKey })).toBe(
			'Invalid VAPID_PRIVATE_KEY: set both VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY, or neither',
		);
		expect(failure({ VAPID_PUBLIC_KEY: other.publicKey, VAPID_PRIVATE_KEY: keys.privateKey })).toMatch(
			/^Invalid VAPID_PUBLIC_KEY: is not the public key of VAPID_PRIVATE_KEY/,
		);
		expect(failure({ VAPID_PUBLIC_KEY: 'abc', VAPID_PRIVATE_KEY: keys.privateKey })).toMatch(
			/^Invalid VAPID_PUBLIC_KEY: expected an uncompressed P-256 public key/,
		);
		expect(failure({ VAPID_SUBJECT: 'admin@example.com' })).toMatch(
			/^Invalid VAPID_SUBJECT: expected a mailto: address or an https: URL/,
		);
	});

	it('never echoes the private key in the message', () => {
		const message = failure({ VAPID_PRIVATE_KEY: `${keys.privateKey}x` });
		expect(message).toMatch(/^Invalid VAPID_PRIVATE_KEY: /);
		expect(message).not.toContain(keys.privateKey);
	});
});

import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../server/config.ts';
import { clientAddress } from '../../server/http/client-address.ts';

const trusted = (value: string) => parseConfig({ TRUST_PROXY: value }).TRUST_PROXY;

/** A request as a node sees it: the socket's peer and the X-Forwarded-For it was given. */
const request = (peer: string, forwardedFor?: string) =>
	({
		socket: { remoteAddress: peer },
		connection: { remoteAddress: peer },
		headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {},
	}) as unknown as IncomingMessage;

describe('TRUST_PROXY', () => {
	it('takes nothing by default, or a list of addresses, ranges and names', () => {
		expect(trusted('')).toEqual([]);
		expect(trusted('false')).toEqual([]);
		expect(trusted('loopback, 10.0.0.0/8,::1 , 192.168.1.7')).toEqual([
			'loopback',
			'10.0.0.0/8',
			'::1',
			'192.168.1.7',
		]);
	});

	it('refuses `true` and anything that is not an address, saying what it expects', () => {
		expect(() => trusted('true')).toThrow(ConfigError);
		expect(() => trusted('true')).toThrow(/TRUST_PROXY: name the proxies to trust/);
		expect(() => trusted('nginx')).toThrow(/"nginx" is not an address/);
		expect(() => trusted('10.0.0.0/33')).toThrow(/"10.0.0.0\/33"/);
	});

	it('believes only the entries the trusted proxies added', () => {
		const behindNginx = clientAddress(['10.0.0.5']);
		// The client wrote 1.2.3.4 itself; nginx appended the address it saw.
		expect(behindNginx(request('10.0.0.5', '1.2.3.4, 198.51.100.7'))).toBe('198.51.100.7');
		// A client that reaches the node directly is that client, whatever it writes.
		expect(behindNginx(request('198.51.100.9', '1.2.3.4'))).toBe('198.51.100.9');
		expect(clientAddress([])(request('10.0.0.5', '1.2.3.4'))).toBe('10.0.0.5');
	});
});

import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../server/log.ts';
import { StatelessRouter } from '../../server/collab/stateless-router.ts';
import { clientStateless, dispatchStateless, serverStateless } from '../../src/lib/protocol/stateless.ts';

const id = '0b6d7a9e-2f4c-4e58-9a1b-7c3d2e1f0a9b';

describe('the stateless dispatch', () => {
	it('reads a payload once and calls only the handler of its type, with the caller’s context', () => {
		const ack = vi.fn(
			(message: { clientMsgIds: string[] }, context: string) => `${context}:${message.clientMsgIds.length}`,
		);
		const reads = vi.fn();
		const payload = JSON.stringify({ type: 'ack', clientMsgIds: [id] });
		expect(dispatchStateless(serverStateless, payload, { ack, reads }, 'room')).toBe('room:1');
		expect(ack).toHaveBeenCalledTimes(1);
		expect(reads).not.toHaveBeenCalled();
	});

	it('says `unknown` for what is not a message of the protocol, and calls nothing', () => {
		const pending = vi.fn();
		const read = vi.fn();
		for (const payload of [
			'not json',
			'{}',
			JSON.stringify({ type: 'newer-thing' }),
			JSON.stringify({ type: 'pending', clientMsgIds: [] }),
		])
			expect(dispatchStateless(clientStateless, payload, { pending, read }, undefined), payload).toBe(
				'unknown',
			);
		expect(pending).not.toHaveBeenCalled();
		expect(read).not.toHaveBeenCalled();
	});

	it('returns nothing for a known type no handler takes', () => {
		const payload = JSON.stringify({ type: 'read', position: null });
		expect(dispatchStateless(clientStateless, payload, {}, undefined)).toBeUndefined();
	});

	it('refuses two extensions that both handle one type', () => {
		const handles = { statelessHandlers: { read: () => undefined } };
		expect(() => new StatelessRouter(createLogger('silent'), [handles, handles])).toThrow(
			/two extensions handle the stateless message "read"/,
		);
	});
});

import { Document } from '@hocuspocus/server';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { applyAwarenessUpdate, Awareness, encodeAwarenessUpdate } from 'y-protocols/awareness';
import * as Y from 'yjs';

/**
 * Our Hocuspocus patch (patches/@hocuspocus+server+4.7.0.patch), option `awarenessRenewalDelay`: a renewal (an
 * awareness state sent again unchanged, only its clock moved) waits up to the delay and goes out with the document's
 * other renewals, or with the next change; changes, arrivals and leaves go out on the next turn, as upstream.
 */
afterEach(() => {
	vi.useRealTimers();
});

/** A remote client whose awareness updates the document applies (as a connection's would be). */
function remote(document: Document, clientID: number) {
	const doc = new Y.Doc();
	doc.clientID = clientID;
	const awareness = new Awareness(doc);
	awareness.setLocalState(null);
	return {
		set(state: unknown) {
			awareness.setLocalState(state as Record<string, unknown>);
			applyAwarenessUpdate(document.awareness, encodeAwarenessUpdate(awareness, [clientID]), 'remote');
		},
		destroy: () => awareness.destroy(),
	};
}

function documentSending(awarenessRenewalDelay: number) {
	const document = new Document('room', {}, { flushDelay: 0, awarenessRenewalDelay });
	const sent: number[][] = [];
	// What the flushes hand on (private in the types): the client ids of each awareness message.
	(document as unknown as { broadcastAwarenessUpdate(clients: number[]): void }).broadcastAwarenessUpdate = (
		clients,
	) => void sent.push([...clients].sort((a, b) => a - b));
	return { document, sent };
}

/** Runs the turn's immediates (the flush of changes). */
const turn = () => vi.advanceTimersByTimeAsync(0);

describe('Hocuspocus with awarenessRenewalDelay', () => {
	it('sends changes at once and holds renewals for one message together', async () => {
		vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'setInterval'] });
		const { document, sent } = documentSending(5_000);
		const [a, b] = [remote(document, 1), remote(document, 2)];
		a.set({ typing: false });
		b.set({ typing: false });
		await turn();
		expect(sent).toEqual([[1, 2]]);

		// Both renew: nothing goes out until the delay is over, then one message for both.
		a.set({ typing: false });
		await vi.advanceTimersByTimeAsync(1_000);
		b.set({ typing: false });
		await vi.advanceTimersByTimeAsync(3_900);
		expect(sent).toHaveLength(1);
		await vi.advanceTimersByTimeAsync(100);
		expect(sent).toEqual([
			[1, 2],
			[1, 2],
		]);

		// A renewal waiting when a change comes goes out with the change, at once.
		a.set({ typing: false });
		b.set({ typing: true });
		await turn();
		expect(sent.at(-1)).toEqual([1, 2]);
		await vi.advanceTimersByTimeAsync(5_000);
		expect(sent).toHaveLength(3);
		for (const r of [a, b]) r.destroy();
		document.destroy();
	});

	it('is off by default: a renewal goes out on the next turn, as upstream', async () => {
		vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'setInterval'] });
		const { document, sent } = documentSending(0);
		const a = remote(document, 1);
		a.set({ typing: false });
		await turn();
		a.set({ typing: false });
		await turn();
		expect(sent).toEqual([[1], [1]]);
		a.destroy();
		document.destroy();
	});
});

import { Document, Hocuspocus } from '@hocuspocus/server';
import { afterEach, describe, expect, it } from 'vitest';
import { applyAwarenessUpdate, Awareness, encodeAwarenessUpdate } from 'y-protocols/awareness';
import * as Y from 'yjs';

/**
 * Our Hocuspocus patch (patches/@hocuspocus+server+4.7.0.patch): the awareness of every document is checked for
 * states gone quiet by one timer of the module's, a tenth of the documents every 300 ms, instead of y-protocols'
 * timer per Awareness (every 3 s each: at a document per signed-in user, a callback a second for every 3 users).
 * What the check does is y-protocols': a state not heard from for 30 s is removed, with origin `timeout`.
 */
const made: { destroy(): void }[] = [];
afterEach(() => {
	for (const thing of made.splice(0)) thing.destroy();
});

function documentWithPeer(): { document: Document; peer: Awareness } {
	const document = new Document('room:timeouts');
	const peer = new Awareness(new Y.Doc());
	made.push(document, peer);
	peer.setLocalState({ user: { name: 'quiet' } });
	applyAwarenessUpdate(document.awareness, encodeAwarenessUpdate(peer, [peer.clientID]), 'test');
	return { document, peer };
}

describe("Hocuspocus documents' awareness timeouts", () => {
	it('keeps no timer per document', () => {
		const { document } = documentWithPeer();
		const own = (document.awareness as unknown as { _checkInterval: { _destroyed: boolean } })._checkInterval;
		expect(own._destroyed).toBe(true);
	});

	it('removes a state not heard from for 30 s within the next check, as y-protocols does', async () => {
		const { document, peer } = documentWithPeer();
		const fresh = documentWithPeer();
		document.awareness.meta.get(peer.clientID)!.lastUpdated = Date.now() - 31_000;
		const removed = new Promise<{ ids: number[]; origin: unknown }>((resolve) =>
			document.awareness.on('change', ({ removed: ids }: { removed: number[] }, origin: unknown) =>
				resolve({ ids, origin }),
			),
		);
		const outcome = await Promise.race([
			removed,
			new Promise<null>((resolve) => setTimeout(() => resolve(null), 5_000)),
		]);
		expect(outcome).toEqual({ ids: [peer.clientID], origin: 'timeout' });
		expect(document.awareness.getStates().has(peer.clientID)).toBe(false);
		// One heard from within 30 s stays.
		expect(fresh.document.awareness.getStates().has(fresh.peer.clientID)).toBe(true);
	});
});

describe('Hocuspocus documents whose load failed', () => {
	it('are destroyed, so that nothing keeps them (the awareness check held each one for good)', async () => {
		let loading: Document | undefined;
		const hocuspocus = new Hocuspocus({
			quiet: true,
			extensions: [
				{
					async onLoadDocument({ document }) {
						loading = document;
						throw new Error('storage unavailable');
					},
				},
			],
		});
		const request = { url: '/collab', headers: new Headers() } as unknown as Request;
		await expect(
			hocuspocus.createDocument('room:unloadable', request, 'socket', {
				readOnly: false,
				isAuthenticated: true,
			}),
		).rejects.toThrow('storage unavailable');
		expect(loading?.isDestroyed).toBe(true);
		expect(hocuspocus.documents.has('room:unloadable')).toBe(false);
	});
});

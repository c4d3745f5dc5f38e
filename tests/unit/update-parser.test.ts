import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { ParseError, parseUpdate } from '../../server/collab/update-parser.ts';

function updateOf(fn: (doc: Y.Doc) => void, base?: Y.Doc): Uint8Array {
	const doc = base ?? new Y.Doc();
	const sv = Y.encodeStateVector(doc);
	fn(doc);
	return Y.encodeStateAsUpdate(doc, sv);
}

describe('the strict update parser', () => {
	it('reads a new map key with its root, key and JSON value the way Yjs wrote them', () => {
		const value = {
			kind: 'message',
			n: 1,
			f: 1.5,
			big: 2 ** 40,
			neg: -7,
			ok: true,
			no: null,
			list: [1, 'two'],
			s: 'é🎉',
		};
		const update = updateOf((d) => d.getMap('messages').set('k1', value));
		const parsed = parseUpdate(update);
		expect(parsed.deletes).toEqual([]);
		expect(parsed.structs).toHaveLength(1);
		const item = parsed.structs[0];
		expect(item).toMatchObject({
			type: 'item',
			origin: null,
			rightOrigin: null,
			parent: { kind: 'root', name: 'messages' },
			parentSub: 'k1',
		});
		expect(item?.type === 'item' && item.values).toEqual([value]);
	});

	it('sees an overwrite as an item with an origin, and a delete in the delete set', () => {
		const doc = new Y.Doc();
		doc.getMap('messages').set('k', { a: 1 });
		const overwrite = parseUpdate(updateOf((d) => d.getMap('messages').set('k', { a: 2 }), doc));
		expect(overwrite.structs[0]).toMatchObject({
			type: 'item',
			origin: expect.any(Object),
			parent: null,
			parentSub: null,
		});
		expect(overwrite.deletes.length).toBeGreaterThan(0);
	});

	it('refuses content kinds the product never writes', () => {
		expect(() => parseUpdate(updateOf((d) => d.getText('t').insert(0, 'hi')))).toThrow(/content kind 4/);
		expect(() => parseUpdate(updateOf((d) => d.getMap('m').set('nested', new Y.Map())))).toThrow(
			/content kind 7/,
		);
	});

	it('ends every truncated or corrupted update in a ParseError or a parse, quickly', () => {
		const doc = new Y.Doc();
		for (let i = 0; i < 20; i++)
			doc.getMap('messages').set(randomUUID(), { kind: 'message', content: 'x'.repeat(i) });
		const good = Y.encodeStateAsUpdate(doc);
		let seed = 42;
		const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
		const outcomes = { parsed: 0, refused: 0 };
		for (let n = 0; n < 3000; n++) {
			const bytes = good.slice(0, Math.floor(random() * good.length));
			for (let k = 0; k < 3; k++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
			try {
				parseUpdate(bytes);
				outcomes.parsed++;
			} catch (error) {
				expect(error).toBeInstanceOf(ParseError);
				outcomes.refused++;
			}
		}
		// A parse that looped would never get here; one that accepted cut-off bytes would count them as parsed
		// (nearly every input here is cut short, so nearly every one must be refused).
		expect(outcomes.parsed + outcomes.refused).toBe(3000);
		expect(outcomes.refused).toBeGreaterThan(2_900);
	});

	it('refuses lengths larger than the update instead of allocating them', () => {
		// one client, 2^40 structs claimed
		expect(() => parseUpdate(new Uint8Array([1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 1, 0]))).toThrow(
			ParseError,
		);
		expect(() => parseUpdate(new Uint8Array([]))).toThrow(ParseError);
		expect(() => parseUpdate(new Uint8Array([0, 0, 7]))).toThrow(/trailing/);
	});
});

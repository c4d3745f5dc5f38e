/**
 * A strict, bounds-checked reader of Yjs V1 updates. Client bytes are read here, never by
 * `Y.mergeUpdates`, `Y.decodeUpdate` or V2 functions, which can hang on crafted input (yjs#687).
 * Every length is checked against the bytes left before it is used, so a malformed update ends in a
 * ParseError in time proportional to its size.
 *
 * Only the content kind this product writes is decoded: `ContentAny` (plain JSON values). An update
 * carrying any other content is refused.
 */

export class ParseError extends Error {
	readonly code = 'malformed_update';
}

export interface StructId {
	client: number;
	clock: number;
}

export type ParsedParent = { kind: 'root'; name: string } | { kind: 'item'; id: StructId } | null;

export interface ParsedItem {
	type: 'item';
	id: StructId;
	length: number;
	origin: StructId | null;
	rightOrigin: StructId | null;
	/** Present only when the item has no origins (Yjs omits it otherwise). */
	parent: ParsedParent;
	parentSub: string | null;
	/** The item's JSON values (ContentAny), one per clock tick. */
	values: unknown[];
}

export interface ParsedRange {
	type: 'gc' | 'skip';
	id: StructId;
	length: number;
}

export type ParsedStruct = ParsedItem | ParsedRange;

export interface ParsedUpdate {
	structs: ParsedStruct[];
	deletes: { client: number; clock: number; length: number }[];
}

const CONTENT_ANY = 8;
const MAX_DEPTH = 16;

class Reader {
	readonly #bytes: Uint8Array;
	#pos = 0;
	readonly #utf8 = new TextDecoder('utf-8', { fatal: true });

	constructor(bytes: Uint8Array) {
		this.#bytes = bytes;
	}

	get remaining(): number {
		return this.#bytes.length - this.#pos;
	}

	byte(): number {
		if (this.#pos >= this.#bytes.length) throw new ParseError('unexpected end of update');
		return this.#bytes[this.#pos++] as number;
	}

	varUint(): number {
		let num = 0;
		let mult = 1;
		for (let i = 0; i < 8; i++) {
			const b = this.byte();
			num += (b & 0x7f) * mult;
			if (b < 0x80) {
				if (!Number.isSafeInteger(num)) throw new ParseError('integer out of range');
				return num;
			}
			mult *= 128;
		}
		throw new ParseError('integer out of range');
	}

	varInt(): number {
		let b = this.byte();
		let num = b & 0x3f;
		let mult = 64;
		const negative = (b & 0x40) > 0;
		let i = 0;
		while (b & 0x80) {
			if (++i > 8) throw new ParseError('integer out of range');
			b = this.byte();
			num += (b & 0x7f) * mult;
			mult *= 128;
		}
		if (!Number.isSafeInteger(num)) throw new ParseError('integer out of range');
		return negative ? -num : num;
	}

	/** A count of things each at least `minBytes` long: more than the bytes left is malformed. */
	count(minBytes = 1): number {
		const n = this.varUint();
		if (n * minBytes > this.remaining) throw new ParseError('length exceeds update size');
		return n;
	}

	bytes(n: number): Uint8Array {
		if (n > this.remaining) throw new ParseError('length exceeds update size');
		const out = this.#bytes.subarray(this.#pos, this.#pos + n);
		this.#pos += n;
		return out;
	}

	string(): string {
		const n = this.count();
		try {
			return this.#utf8.decode(this.bytes(n));
		} catch (error) {
			if (error instanceof ParseError) throw error;
			throw new ParseError('string is not valid UTF-8');
		}
	}

	id(): StructId {
		return { client: this.varUint(), clock: this.varUint() };
	}

	/** lib0's `readAny`, with a depth limit and bounds checks. */
	any(depth = 0): unknown {
		if (depth > MAX_DEPTH) throw new ParseError('value nested too deeply');
		const type = this.byte();
		switch (type) {
			case 127:
				return undefined;
			case 126:
				return null;
			case 125:
				return this.varInt();
			case 124: {
				const b = this.bytes(4);
				return new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, false);
			}
			case 123: {
				const b = this.bytes(8);
				return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, false);
			}
			case 122: {
				const b = this.bytes(8);
				return new DataView(b.buffer, b.byteOffset, 8).getBigInt64(0, false);
			}
			case 121:
				return false;
			case 120:
				return true;
			case 119:
				return this.string();
			case 118: {
				const n = this.count(2);
				const obj: Record<string, unknown> = Object.create(null);
				for (let i = 0; i < n; i++) {
					const key = this.string();
					obj[key] = this.any(depth + 1);
				}
				return obj;
			}
			case 117: {
				const n = this.count();
				const arr: unknown[] = [];
				for (let i = 0; i < n; i++) arr.push(this.any(depth + 1));
				return arr;
			}
			case 116:
				return this.bytes(this.count(0)).slice();
			default:
				throw new ParseError(`unknown value type ${type}`);
		}
	}
}

/** Parses a complete V1 update; trailing bytes are malformed. */
export function parseUpdate(update: Uint8Array): ParsedUpdate {
	const r = new Reader(update);
	const structs: ParsedStruct[] = [];
	const clients = r.count(3);
	for (let c = 0; c < clients; c++) {
		const n = r.count(2);
		const client = r.varUint();
		let clock = r.varUint();
		for (let i = 0; i < n; i++) {
			const info = r.byte();
			const ref = info & 0x1f;
			const id = { client, clock };
			if (ref === 0 || ref === 10) {
				const length = r.varUint();
				if (length < 1) throw new ParseError('empty struct');
				structs.push({ type: ref === 0 ? 'gc' : 'skip', id, length });
				clock += length;
				continue;
			}
			const origin = info & 0x80 ? r.id() : null;
			const rightOrigin = info & 0x40 ? r.id() : null;
			const hasParentInfo = origin === null && rightOrigin === null;
			let parent: ParsedParent = null;
			if (hasParentInfo) {
				parent = r.varUint() === 1 ? { kind: 'root', name: r.string() } : { kind: 'item', id: r.id() };
			}
			const parentSub = hasParentInfo && info & 0x20 ? r.string() : null;
			if (ref !== CONTENT_ANY) {
				// This product writes only plain JSON values; other content kinds are refused unread.
				throw new ParseError(`content kind ${ref} is not accepted`);
			}
			const length = r.count();
			if (length < 1) throw new ParseError('empty struct');
			const values: unknown[] = [];
			for (let v = 0; v < length; v++) values.push(r.any());
			structs.push({ type: 'item', id, length, origin, rightOrigin, parent, parentSub, values });
			clock += length;
		}
	}
	const deletes: ParsedUpdate['deletes'] = [];
	const dsClients = r.count(2);
	for (let c = 0; c < dsClients; c++) {
		const client = r.varUint();
		const n = r.count(2);
		for (let i = 0; i < n; i++) deletes.push({ client, clock: r.varUint(), length: r.varUint() });
	}
	if (r.remaining !== 0) throw new ParseError('trailing bytes after update');
	return { structs, deletes };
}

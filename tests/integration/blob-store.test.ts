import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
	BlobHashMismatch,
	BlobNotFound,
	DiskBlobStore,
	S3BlobStore,
	type BlobStore,
} from '../../server/files/blob-store.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';
import { tmpDir } from '../helpers/server.ts';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const text = async (stream: Readable) => Buffer.concat(await stream.toArray()).toString();
const bytesOf = async (stream: Readable) => Buffer.concat(await stream.toArray());
const all = async (store: BlobStore) => {
	const hashes: string[] = [];
	for await (const hash of store.list()) hashes.push(hash);
	return hashes.sort();
};

/**
 * The attachments' storage (issue 19, done-when 5): the same tests for the disk backend and for the S3 backend
 * against an S3-compatible server started here (s3rver).
 */
const backends: [
	string,
	() => Promise<{ store: BlobStore; leftovers: () => string[]; close(): Promise<void> }>,
][] = [
	[
		'disk',
		async () => {
			const root = tmpDir('blobs');
			return {
				store: new DiskBlobStore(root),
				leftovers: () => fs.readdirSync(path.join(root, 'tmp')),
				close: async () => fs.rmSync(root, { recursive: true, force: true }),
			};
		},
	],
	[
		's3',
		async () => {
			const s3: TestS3 = await startS3();
			const spool = tmpDir('spool');
			const store = new S3BlobStore(s3.options, spool);
			return {
				store,
				leftovers: () => fs.readdirSync(spool),
				close: async () => {
					store.close();
					await s3.close();
					fs.rmSync(spool, { recursive: true, force: true });
				},
			};
		},
	],
];

describe.each(backends)('blob store on %s', (_name, open) => {
	let store: BlobStore;
	let leftovers: () => string[];
	let close: () => Promise<void>;

	beforeAll(async () => {
		({ store, leftovers, close } = await open());
	});
	afterAll(async () => {
		await close?.();
	});

	it('stores bytes under their hash, reads them whole and by range, and stores the same bytes once', async () => {
		const bytes = Buffer.from('hello, attachments');
		const hash = sha256(bytes);
		expect(await store.size(hash)).toBeNull();
		expect(await store.put(hash, () => Readable.from([bytes]))).toBe(true);
		expect(await store.size(hash)).toBe(bytes.length);
		expect(await text(await store.read(hash))).toBe('hello, attachments');
		expect(await text(await store.read(hash, { start: 7, end: 17 }))).toBe('attachments');
		// Already there: the source is not even opened.
		expect(
			await store.put(hash, () => {
				throw new Error('read again');
			}),
		).toBe(false);
		expect(await all(store)).toContain(hash);
	});

	it('streams a 6 MB file in and out unchanged', async () => {
		const bytes = randomBytes(6 * 1024 * 1024);
		const hash = sha256(bytes);
		// In 64 KB chunks, as a request body arrives.
		const chunks = Array.from({ length: bytes.length / 65_536 }, (_, i) =>
			bytes.subarray(i * 65_536, (i + 1) * 65_536),
		);
		expect(await store.put(hash, () => Readable.from(chunks))).toBe(true);
		const back = await bytesOf(await store.read(hash));
		expect(back.length).toBe(bytes.length);
		expect(sha256(back)).toBe(hash);
		const tail = await bytesOf(await store.read(hash, { start: bytes.length - 10, end: bytes.length - 1 }));
		expect(tail.equals(bytes.subarray(bytes.length - 10))).toBe(true);
	});

	it('refuses bytes that do not match their hash, and keeps nothing of them', async () => {
		const claimed = sha256(Buffer.from('what was announced'));
		await expect(store.put(claimed, () => Readable.from([Buffer.from('something else')]))).rejects.toThrow(
			BlobHashMismatch,
		);
		expect(await store.size(claimed)).toBeNull();
		expect(leftovers()).toEqual([]);
	});

	it('keeps nothing of a source that fails half-way', async () => {
		const bytes = Buffer.from('a stream that breaks');
		const hash = sha256(bytes);
		const broken = () =>
			Readable.from(
				(async function* () {
					yield bytes.subarray(0, 5);
					throw new Error('connection dropped');
				})(),
			);
		await expect(store.put(hash, broken)).rejects.toThrow('connection dropped');
		expect(await store.size(hash)).toBeNull();
		expect(leftovers()).toEqual([]);
	});

	it('says clearly when a blob is missing, deletes, and refuses a name that is not a hash', async () => {
		const bytes = Buffer.from('to be deleted');
		const hash = sha256(bytes);
		await expect(store.read(hash)).rejects.toThrow(BlobNotFound);
		await store.put(hash, () => Readable.from([bytes]));
		await store.delete(hash);
		expect(await store.size(hash)).toBeNull();
		await store.delete(hash); // already gone: no error
		expect(await all(store)).not.toContain(hash);
		for (const name of ['../../etc/passwd', 'ABCDEF', `${hash}/x`, ''])
			await expect(store.size(name)).rejects.toThrow(TypeError);
	});
});

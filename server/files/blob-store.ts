import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';

/**
 * The S3 SDK, loaded by the first S3 store: 35 MB of RSS and 9 MB of heap that a node keeping its files on disk
 * never needs (issue 21).
 */
type S3Sdk = typeof import('@aws-sdk/client-s3');

/**
 * Where attachments' bytes live: content-addressed by their SHA-256 (lowercase hex), so the same file sent twice
 * is stored once. Two backends behind one interface: the local disk under `DATA_DIR` (the embedded default, one
 * node) and any S3-compatible object store, which every node of a cluster reads (issue 19).
 *
 * A blob is written whole or not at all: the bytes go to a temporary name and take their hash's name only once
 * their hash has been checked, so a crash, a dropped stream or a wrong hash never leaves a damaged blob behind.
 */
export interface BlobStore {
	readonly kind: 'disk' | 's3';
	/**
	 * Stores the bytes of `source` as the blob `hash`. Refuses (and keeps nothing) when they do not hash to `hash`.
	 * Resolves `false` when the blob was already there (its source is then not read).
	 */
	put(hash: string, source: () => Readable): Promise<boolean>;
	/** The blob's size in bytes, or null when there is no such blob. */
	size(hash: string): Promise<number | null>;
	/** The blob's bytes, whole or from `start` to `end` (both included). Rejects with `BlobNotFound`. */
	read(hash: string, range?: { start: number; end: number }): Promise<Readable>;
	/** Removes the blob; nothing happens when there is none. */
	delete(hash: string): Promise<void>;
	/** Every stored blob's hash (garbage collection walks them). */
	list(): AsyncIterable<string>;
}

export class BlobNotFound extends Error {
	constructor(hash: string) {
		super(`no stored file with hash ${hash}`);
		this.name = 'BlobNotFound';
	}
}

export class BlobHashMismatch extends Error {
	constructor(expected: string, actual: string) {
		super(`the bytes hash to ${actual}, not to ${expected}: not stored`);
		this.name = 'BlobHashMismatch';
	}
}

const HASH = /^[0-9a-f]{64}$/;

/** A hash as a blob's name, or a clear error: nothing else ever becomes a path or a key. */
function checkHash(hash: string): string {
	if (!HASH.test(hash)) throw new TypeError(`not a SHA-256 in lowercase hex: ${JSON.stringify(hash)}`);
	return hash;
}

/** Passes bytes through and hashes them on the way (SHA-256 of what went through, and how many bytes). */
export class Hashing extends Transform {
	readonly #hash = createHash('sha256');
	bytes = 0;

	override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
		this.#hash.update(chunk);
		this.bytes += chunk.length;
		done(null, chunk);
	}

	digest(): string {
		return this.#hash.digest('hex');
	}
}

/** Writes `source` to the new file `file`, hashing it on the way; throws when it does not hash to `hash`. */
async function writeChecked(source: Readable, hash: string, file: string): Promise<number> {
	const hashing = new Hashing();
	await pipeline(source, hashing, fs.createWriteStream(file, { flags: 'wx' }));
	const actual = hashing.digest();
	if (actual !== hash) throw new BlobHashMismatch(hash, actual);
	return hashing.bytes;
}

/** Hashes a stream's bytes: its SHA-256 in lowercase hex and its length. */
export async function hashStream(source: Readable): Promise<{ hash: string; size: number }> {
	const hash = createHash('sha256');
	let size = 0;
	for await (const chunk of source as AsyncIterable<Buffer>) {
		hash.update(chunk);
		size += chunk.length;
	}
	return { hash: hash.digest('hex'), size };
}

/** Blobs as files under `root`, fanned out by their first two hex digits: `<root>/ab/ab12…`. */
export class DiskBlobStore implements BlobStore {
	readonly kind = 'disk';
	readonly #root: string;
	readonly #tmp: string;

	constructor(root: string) {
		this.#root = root;
		this.#tmp = path.join(root, 'tmp');
		fs.mkdirSync(this.#tmp, { recursive: true });
	}

	#path(hash: string): string {
		return path.join(this.#root, checkHash(hash).slice(0, 2), hash);
	}

	async put(hash: string, source: () => Readable): Promise<boolean> {
		const target = this.#path(hash);
		if (fs.existsSync(target)) return false;
		const tmp = path.join(this.#tmp, randomUUID());
		try {
			await writeChecked(source(), hash, tmp);
			await fs.promises.mkdir(path.dirname(target), { recursive: true });
			// Two writers of the same bytes: the second rename replaces the first with the same content.
			await fs.promises.rename(tmp, target);
			return true;
		} finally {
			await fs.promises.rm(tmp, { force: true });
		}
	}

	async size(hash: string): Promise<number | null> {
		try {
			return (await fs.promises.stat(this.#path(hash))).size;
		} catch (error) {
			if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
			throw error;
		}
	}

	async read(hash: string, range?: { start: number; end: number }): Promise<Readable> {
		const file = this.#path(hash);
		const handle = await fs.promises.open(file, 'r').catch((error: NodeJS.ErrnoException) => {
			throw error.code === 'ENOENT' ? new BlobNotFound(hash) : error;
		});
		return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
	}

	async delete(hash: string): Promise<void> {
		await fs.promises.rm(this.#path(hash), { force: true });
	}

	async *list(): AsyncIterable<string> {
		for (const dir of await fs.promises.readdir(this.#root)) {
			if (!/^[0-9a-f]{2}$/.test(dir)) continue;
			for (const name of await fs.promises.readdir(path.join(this.#root, dir)))
				if (HASH.test(name)) yield name;
		}
	}
}

export interface S3Options {
	endpoint?: string;
	region: string;
	bucket: string;
	accessKeyId?: string;
	secretAccessKey?: string;
	/** Path-style addresses (`<endpoint>/<bucket>/<key>`): MinIO and most self-hosted stores want them. */
	forcePathStyle: boolean;
	/** Keys start with this (a bucket shared with other data). */
	prefix?: string;
}

/**
 * Blobs as objects `<prefix>blobs/<hash>` of an S3-compatible store. The bytes are hashed while they stream to a
 * spool file on this node and are sent only when their hash is right: a blob's key always names exactly its bytes,
 * and no file is ever held in memory.
 */
export class S3BlobStore implements BlobStore {
	readonly kind = 's3';
	readonly #sdk: Promise<{ sdk: S3Sdk; s3: S3Client }>;
	#client: S3Client | undefined;
	readonly #bucket: string;
	readonly #prefix: string;
	readonly #spool: string;

	constructor(options: S3Options, spoolDir: string) {
		const config: S3ClientConfig = {
			endpoint: options.endpoint,
			region: options.region,
			forcePathStyle: options.forcePathStyle,
			// Checksums only where S3 requires them: by default the SDK sends streamed bodies in the "aws-chunked"
			// encoding with a trailing checksum, which S3-compatible stores that do not know it (s3rver, older
			// MinIO) keep as part of the object. The blob's SHA-256 is checked on the way in anyway.
			requestChecksumCalculation: 'WHEN_REQUIRED',
			responseChecksumValidation: 'WHEN_REQUIRED',
		};
		if (options.accessKeyId && options.secretAccessKey)
			config.credentials = { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey };
		this.#sdk = import('@aws-sdk/client-s3').then((sdk) => {
			this.#client = new sdk.S3Client(config);
			return { sdk, s3: this.#client };
		});
		this.#bucket = options.bucket;
		this.#prefix = options.prefix ?? '';
		this.#spool = spoolDir;
		fs.mkdirSync(spoolDir, { recursive: true });
	}

	#key(hash: string): string {
		return `${this.#prefix}blobs/${checkHash(hash)}`;
	}

	async put(hash: string, source: () => Readable): Promise<boolean> {
		if ((await this.size(hash)) !== null) return false;
		// Hashed on the way to a local spool file, so that nothing with a wrong hash ever reaches the bucket and
		// the upload knows its length (S3 wants it for a single PUT).
		const spool = path.join(this.#spool, randomUUID());
		try {
			const bytes = await writeChecked(source(), hash, spool);
			const { sdk, s3 } = await this.#sdk;
			await s3.send(
				new sdk.PutObjectCommand({
					Bucket: this.#bucket,
					Key: this.#key(hash),
					Body: fs.createReadStream(spool),
					ContentLength: bytes,
					ContentType: 'application/octet-stream',
				}),
			);
			return true;
		} finally {
			await fs.promises.rm(spool, { force: true });
		}
	}

	async size(hash: string): Promise<number | null> {
		const { sdk, s3 } = await this.#sdk;
		try {
			const head = await s3.send(new sdk.HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(hash) }));
			return head.ContentLength ?? 0;
		} catch (error) {
			if (error instanceof sdk.NotFound || error instanceof sdk.NoSuchKey) return null;
			throw error;
		}
	}

	async read(hash: string, range?: { start: number; end: number }): Promise<Readable> {
		const { sdk, s3 } = await this.#sdk;
		try {
			const got = await s3.send(
				new sdk.GetObjectCommand({
					Bucket: this.#bucket,
					Key: this.#key(hash),
					Range: range ? `bytes=${range.start}-${range.end}` : undefined,
				}),
			);
			if (!(got.Body instanceof Readable)) throw new Error('the object store answered without a body');
			return got.Body;
		} catch (error) {
			if (error instanceof sdk.NoSuchKey || error instanceof sdk.NotFound) throw new BlobNotFound(hash);
			throw error;
		}
	}

	async delete(hash: string): Promise<void> {
		const { sdk, s3 } = await this.#sdk;
		await s3.send(new sdk.DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(hash) }));
	}

	async *list(): AsyncIterable<string> {
		let token: string | undefined;
		const prefix = `${this.#prefix}blobs/`;
		const { sdk, s3 } = await this.#sdk;
		do {
			const page = await s3.send(
				new sdk.ListObjectsV2Command({ Bucket: this.#bucket, Prefix: prefix, ContinuationToken: token }),
			);
			for (const object of page.Contents ?? []) {
				const hash = object.Key?.slice(prefix.length) ?? '';
				if (HASH.test(hash)) yield hash;
			}
			token = page.IsTruncated ? page.NextContinuationToken : undefined;
		} while (token);
	}

	close(): void {
		if (this.#client) {
			this.#client.destroy();
			return;
		}
		// One still loading is destroyed as it arrives.
		void this.#sdk.then(
			({ s3 }) => s3.destroy(),
			() => undefined,
		);
	}
}

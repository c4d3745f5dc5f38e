import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import pino from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AttachmentRef, MessageEvent } from '../../src/lib/protocol/events.ts';
import { openPostgres } from '../../server/db/postgres.ts';
import type { Db } from '../../server/db/index.ts';
import { deleteIfUnused, recordStored } from '../../server/files/blob-locks.ts';
import { FileCollector } from '../../server/files/collect.ts';
import { PartialUploads } from '../../server/files/partials.ts';
import { describeEachBackend } from '../helpers/backends.ts';
import { connect, waitFor } from '../helpers/collab.ts';
import { parsePrometheus } from '../helpers/prometheus.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

/**
 * Garbage collection of attachments (issue 19, server/files/collect.ts): abandoned uploads, files never sent and
 * files of deleted messages lose their rows, their partial bytes and their blobs, and nothing a live message
 * shows is touched. Passes run by hand here (`app.files.collector.collect()`); the timer is off.
 */

type Account = Awaited<ReturnType<TestServer['api']['register']>>;

const b64 = (s: string) => Buffer.from(s).toString('base64');
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const silent = pino({ level: 'silent' });
const HOUR = 3600;

/** A small PNG of a colour of its own: bytes (and a thumbnail) no other test stores. */
const uniquePng = () =>
	sharp({
		create: {
			width: 8,
			height: 8,
			channels: 3,
			background: { r: randomInt(256), g: randomInt(256), b: randomInt(256) },
		},
	})
		.png()
		.toBuffer();

/** Creates an upload and sends its first `sent` bytes (all of them by default); the ref a message carries. */
async function upload(
	server: TestServer,
	who: Account,
	roomId: string,
	bytes: Buffer,
	options: { type?: string; sent?: number } = {},
): Promise<AttachmentRef> {
	const type = options.type ?? 'application/octet-stream';
	const created = await fetch(`${server.url}/api/uploads`, {
		method: 'POST',
		headers: {
			authorization: `Bearer ${who.accessToken}`,
			'tus-resumable': '1.0.0',
			'upload-length': String(bytes.length),
			'upload-metadata': `roomId ${b64(roomId)},filename ${b64('file.bin')},filetype ${b64(type)}`,
		},
	});
	expect(created.status, await created.text()).toBe(201);
	const id = new URL(created.headers.get('location') ?? '', server.url).pathname.split('/').pop() ?? '';
	const sent = await patch(server, who, id, bytes.subarray(0, options.sent ?? bytes.length), 0);
	expect(sent.status, await sent.text()).toBe(204);
	const header = (h: string) => sent.headers.get(h);
	const ref: AttachmentRef = {
		id,
		name: 'file.bin',
		size: Number(header('x-chat-size')),
		mediaType: header('x-chat-media-type') ?? '',
	};
	if (header('x-chat-width')) ref.width = Number(header('x-chat-width'));
	if (header('x-chat-height')) ref.height = Number(header('x-chat-height'));
	if (header('x-chat-placeholder')) ref.placeholder = header('x-chat-placeholder') ?? undefined;
	return ref;
}

const patch = (server: TestServer, who: Account, id: string, bytes: Buffer, offset: number) =>
	fetch(`${server.url}/api/uploads/${id}`, {
		method: 'PATCH',
		headers: {
			authorization: `Bearer ${who.accessToken}`,
			'tus-resumable': '1.0.0',
			'upload-offset': String(offset),
			'content-type': 'application/offset+octet-stream',
		},
		body: new Uint8Array(bytes),
	});

/** Writes an event through the real server, as the app does, and waits until it is durable. */
async function write(server: TestServer, who: Account, roomId: string, fields: Record<string, unknown>) {
	const client = connect(server.wsUrl, roomId, who.accessToken, who.user.id);
	try {
		await client.synced();
		const event = client.write(fields as never);
		await client.synced();
		return event;
	} finally {
		client.destroy();
	}
}
const send = async (server: TestServer, who: Account, roomId: string, attachments: AttachmentRef[]) =>
	(await write(server, who, roomId, { kind: 'message', content: 'files', attachments })) as MessageEvent;
const remove = (server: TestServer, who: Account, roomId: string, targetId: string) =>
	write(server, who, roomId, { kind: 'delete', targetId });

const cli = fileURLToPath(new URL('../../server/files/collect-cli.ts', import.meta.url));

/** Runs the operators' one-pass command with the server's settings. */
function runCli(
	env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
	return new Promise((resolve, reject) => {
		const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('S3_')));
		const child = spawn(process.execPath, [cli], {
			env: { ...clean, LOG_LEVEL: 'warn', ...env },
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		let stdout = '';
		let stderr = '';
		child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
		child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
		child.on('error', reject);
		child.on('close', (code) => resolve({ code, stdout, stderr }));
	});
}

/** What a test looks at on a server: rows, blobs, partial uploads, downloads, metrics. */
function probe(server: TestServer) {
	const db = () => server.app.db;
	return {
		collect: () => server.app.files.collector.collect(),
		row: async (id: string) =>
			(
				await db().query<{ sha256: string | null; thumb_sha256: string | null }>(
					'SELECT sha256, thumb_sha256 FROM attachments WHERE id = $1',
					[id],
				)
			).rows[0],
		/** Moves a row's start and end `hours` back, as if it were that old. */
		age: (id: string, hours: number) =>
			db().query(
				`UPDATE attachments SET created_at = created_at - make_interval(hours => $2),
				   completed_at = completed_at - make_interval(hours => $2) WHERE id = $1`,
				[id, hours],
			),
		stored: async (hash: string) => (await server.app.files.blobs.size(hash)) !== null,
		partial: (id: string) => path.join(server.dataDir, 'uploads', id),
		download: (id: string, who: Account) =>
			fetch(`${server.url}/api/files/${id}`, { headers: { authorization: `Bearer ${who.accessToken}` } }),
		metric: async (name: string, labels: Record<string, string>) =>
			parsePrometheus(await (await fetch(`${server.url}/metrics`)).text()).value(name, labels) ?? 0,
	};
}

describeEachBackend('attachments: garbage collection', (backend) => {
	let server: TestServer;
	let ana: Account;
	let ben: Account;
	let roomId: string;
	let p: ReturnType<typeof probe>;

	beforeAll(async () => {
		server = await startTestServer(backend, { ATTACHMENT_GC_INTERVAL_MINUTES: '0' });
		ana = await server.api.register('ana');
		ben = await server.api.register('ben');
		roomId = (await server.api.createGroup(ana.accessToken, [ben.user.id], 'files')).id;
		p = probe(server);
	}, 60_000);
	afterAll(async () => {
		await server?.close();
	});

	it('removes an upload abandoned longer than the grace period, with its partial bytes; keeps a fresh one', async () => {
		const bytes = randomBytes(40_000);
		const old = await upload(server, ana, roomId, bytes, { sent: 10_000 });
		const fresh = await upload(server, ana, roomId, bytes, { sent: 10_000 });
		expect(fs.statSync(p.partial(old.id)).size).toBe(10_000);
		await p.age(old.id, 25);
		const freedBefore = await p.metric('chat_attachment_bytes_freed_total', { store: 'uploads' });
		const countBefore = await p.metric('chat_attachments_collected_total', { reason: 'abandoned' });

		const pass = await p.collect();
		expect(pass).toMatchObject({ skipped: false, finished: true, partials: 1, partialBytes: 10_000 });
		expect(pass.collected).toEqual({ abandoned: 1, unsent: 0, deleted: 0 });
		expect(await p.row(old.id)).toBeUndefined();
		expect(fs.existsSync(p.partial(old.id))).toBe(false);
		expect(fs.existsSync(`${p.partial(old.id)}.json`)).toBe(false);
		expect(await p.metric('chat_attachments_collected_total', { reason: 'abandoned' })).toBe(countBefore + 1);
		expect(await p.metric('chat_attachment_bytes_freed_total', { store: 'uploads' })).toBe(
			freedBefore + 10_000,
		);
		// Its client can no longer resume it; the fresh one finishes.
		expect((await patch(server, ana, old.id, bytes.subarray(10_000), 10_000)).status).toBe(404);
		expect(fs.statSync(p.partial(fresh.id)).size).toBe(10_000);
		expect((await patch(server, ana, fresh.id, bytes.subarray(10_000), 10_000)).status).toBe(204);
		expect(await p.row(fresh.id)).toMatchObject({ sha256: sha256(bytes) });
		await p.age(fresh.id, 25);
		expect((await p.collect()).collected.unsent).toBe(1);
	});

	it('removes a stored file never sent once the grace period is over, and its blob', async () => {
		const bytes = randomBytes(3000);
		const unsent = await upload(server, ana, roomId, bytes);
		const recent = await upload(server, ana, roomId, randomBytes(100));
		expect(await p.stored(sha256(bytes))).toBe(true);
		await p.age(unsent.id, 25);
		const freedBefore = await p.metric('chat_attachment_bytes_freed_total', { store: 'blobs' });

		const pass = await p.collect();
		expect(pass.collected).toEqual({ abandoned: 0, unsent: 1, deleted: 0 });
		expect(pass).toMatchObject({ blobs: 1, blobBytes: 3000 });
		expect(await p.row(unsent.id)).toBeUndefined();
		expect(await p.stored(sha256(bytes))).toBe(false);
		expect((await p.download(unsent.id, ana)).status).toBe(404);
		expect(await p.metric('chat_attachment_bytes_freed_total', { store: 'blobs' })).toBe(freedBefore + 3000);
		expect((await p.download(recent.id, ana)).status).toBe(200);
		// A message naming it now is refused: the file is gone.
		const client = connect(server.wsUrl, roomId, ana.accessToken, ana.user.id);
		try {
			await client.synced();
			const late = client.write({ kind: 'message', content: 'late', attachments: [unsent] });
			const status = () => client.sync.messages.find((m) => m.clientMsgId === late.clientMsgId);
			await waitFor(() => status()?.status === 'failed', 10_000, 'the message to be refused');
			expect(status()?.reason).toMatch(/no such file was uploaded/);
		} finally {
			client.destroy();
		}
		await p.age(recent.id, 25);
		expect((await p.collect()).collected.unsent).toBe(1);
	});

	it('keeps a sent file, and removes it with its blob once its message is deleted; thumbnails go with it', async () => {
		const image = await uniquePng();
		const ref = await upload(server, ana, roomId, image, { type: 'image/png' });
		const stored = await p.row(ref.id);
		expect(stored?.thumb_sha256).toMatch(/^[0-9a-f]{64}$/);
		const message = await send(server, ana, roomId, [ref]);
		await p.age(ref.id, 1000);

		expect((await p.collect()).collected).toEqual({ abandoned: 0, unsent: 0, deleted: 0 });
		const kept = await p.download(ref.id, ben);
		expect(kept.status).toBe(200);
		expect(Buffer.from(await kept.arrayBuffer()).equals(image)).toBe(true);
		const deletedBefore = await p.metric('chat_attachments_collected_total', { reason: 'deleted' });

		await remove(server, ana, roomId, message.clientMsgId);
		const pass = await p.collect();
		expect(pass.collected).toEqual({ abandoned: 0, unsent: 0, deleted: 1 });
		expect(pass.blobs).toBe(2);
		expect(await p.row(ref.id)).toBeUndefined();
		expect(await p.stored(stored?.sha256 ?? '')).toBe(false);
		expect(await p.stored(stored?.thumb_sha256 ?? '')).toBe(false);
		expect((await p.download(ref.id, ben)).status).toBe(404);
		expect(await p.metric('chat_attachments_collected_total', { reason: 'deleted' })).toBe(deletedBefore + 1);
	});

	it('keeps a blob that two files share until both are gone', async () => {
		const bytes = randomBytes(2000);
		const first = await upload(server, ana, roomId, bytes);
		const second = await upload(server, ben, roomId, bytes);
		const message = await send(server, ana, roomId, [first]);
		await p.age(first.id, 25);
		await p.age(second.id, 25);

		// The second copy was never sent: its row goes, the bytes stay for the first.
		const pass = await p.collect();
		expect(pass.collected).toEqual({ abandoned: 0, unsent: 1, deleted: 0 });
		expect(pass.blobs).toBe(0);
		expect(await p.row(second.id)).toBeUndefined();
		expect(await p.stored(sha256(bytes))).toBe(true);
		expect((await p.download(first.id, ben)).status).toBe(200);

		await remove(server, ana, roomId, message.clientMsgId);
		expect(await p.collect()).toMatchObject({ blobs: 1, blobBytes: 2000 });
		expect(await p.stored(sha256(bytes))).toBe(false);
	});

	it('keeps a file that a live message lists though a deleted one listed it too', async () => {
		const ref = await upload(server, ana, roomId, randomBytes(700));
		const once = await send(server, ana, roomId, [ref]);
		await send(server, ana, roomId, [ref]);
		await remove(server, ana, roomId, once.clientMsgId);
		expect((await p.collect()).collected.deleted).toBe(0);
		expect((await p.download(ref.id, ben)).status).toBe(200);
	});

	it('removes blobs no row uses and partial uploads whose row is gone', async () => {
		// A blob left behind (a room deleted with its files' rows, a crash between storing and recording).
		const orphan = randomBytes(1234);
		await server.app.files.blobs.put(sha256(orphan), () => Readable.from([orphan]));
		const partial = await upload(server, ana, roomId, randomBytes(5000), { sent: 100 });
		await server.app.db.query('DELETE FROM attachments WHERE id = $1', [partial.id]);

		const pass = await p.collect();
		expect(pass).toMatchObject({ blobs: 1, blobBytes: 1234, partials: 1, partialBytes: 100 });
		expect(await p.stored(sha256(orphan))).toBe(false);
		expect(fs.existsSync(p.partial(partial.id))).toBe(false);
	});

	it('runs one pass at a time: a second collector skips while the first holds the lock', async () => {
		const files = [
			await upload(server, ana, roomId, randomBytes(900)),
			await upload(server, ana, roomId, randomBytes(901)),
		];
		for (const file of files) await p.age(file.id, 25);
		let db: Db = server.app.db;
		if (backend === 'postgres') db = openPostgres(server.databaseUrl ?? '', 2, silent);
		const other = new FileCollector(
			{
				db,
				blobs: server.app.files.blobs,
				partials: new PartialUploads(path.join(server.dataDir, 'uploads')),
				log: silent,
			},
			{ graceMs: 24 * HOUR * 1000, intervalMs: 0 },
		);
		try {
			const passes = await Promise.all([p.collect(), other.collect(), p.collect()]);
			expect(passes.filter((pass) => !pass.skipped).length).toBeGreaterThanOrEqual(1);
			expect(passes.reduce((n, pass) => n + pass.collected.unsent, 0)).toBe(2);
			expect(passes.reduce((n, pass) => n + pass.blobs, 0)).toBe(2);
			for (const file of files) expect(await p.row(file.id)).toBeUndefined();

			if (backend === 'postgres') {
				// Another node's pass, holding the lock: this one skips, then runs once it is let go.
				const node = new pg.Client({ connectionString: server.databaseUrl });
				await node.connect();
				try {
					await node.query('BEGIN');
					await node.query('SELECT pg_advisory_xact_lock(4242002)');
					expect((await other.collect()).skipped).toBe(true);
					await node.query('COMMIT');
					expect((await other.collect()).skipped).toBe(false);
				} finally {
					await node.end();
				}
			} else {
				const [first, second] = await Promise.all([p.collect(), other.collect()]);
				expect([first.skipped, second.skipped]).toEqual([false, true]);
			}
		} finally {
			if (db !== server.app.db) await db.close();
		}
	});

	it("collects now from the command line, with the server's settings", async () => {
		const bytes = randomBytes(4321);
		const file = await upload(server, ana, roomId, bytes);
		await p.age(file.id, 25);
		const env = {
			DATA_DIR: server.dataDir,
			...(server.databaseUrl ? { DATABASE_URL: server.databaseUrl } : {}),
		};
		const run = await runCli(env);
		if (backend === 'pglite') {
			// The running server holds the embedded database (and collects by itself).
			expect(run.code).toBe(1);
			expect(run.stderr).toMatch(/the running server holds the embedded database .*: stop it to collect now/);
			expect((await p.collect()).collected.unsent).toBe(1);
		} else {
			expect(run.stderr).toBe('');
			expect(run.code).toBe(0);
			expect(run.stdout).toMatch(
				/^collected 0 abandoned uploads, 1 file never sent, 0 files of deleted messages; 1 blob deleted \(0\.0 MB\), 0 partial uploads removed \(0\.0 MB\) in \d+\.\d s\n$/,
			);
		}
		expect(await p.row(file.id)).toBeUndefined();
		expect(await p.stored(sha256(bytes))).toBe(false);
	});

	it('stores again a blob deleted between storing and recording it; never deletes one a row names', async () => {
		const { db } = server.app;
		const { blobs } = server.app.files;
		const bytes = randomBytes(321);
		const hash = sha256(bytes);
		const source = () => Readable.from([bytes]);
		const ref = await upload(server, ana, roomId, randomBytes(10));
		await blobs.put(hash, source);
		// The collector's turn comes between the upload's put and its record.
		expect(await deleteIfUnused(db, blobs, hash)).toBe(321);
		expect(await p.stored(hash)).toBe(false);
		let records = 0;
		await recordStored(db, blobs, [{ hash, source }], async (tx) => {
			records += 1;
			await tx.query('UPDATE attachments SET thumb_sha256 = $2 WHERE id = $1', [ref.id, hash]);
		});
		expect(records).toBe(1);
		expect(await p.stored(hash)).toBe(true);
		expect(await deleteIfUnused(db, blobs, hash)).toBeNull();
		expect(await p.stored(hash)).toBe(true);
	});
});

describe('attachments: garbage collection on its timer, with files in S3', () => {
	let s3: TestS3;
	let server: TestServer;

	beforeAll(async () => {
		s3 = await startS3();
		server = await startTestServer('pglite', {
			S3_BUCKET: s3.options.bucket,
			S3_ENDPOINT: s3.options.endpoint as string,
			S3_ACCESS_KEY_ID: s3.options.accessKeyId as string,
			S3_SECRET_ACCESS_KEY: s3.options.secretAccessKey as string,
			S3_FORCE_PATH_STYLE: 'true',
		});
	}, 60_000);
	afterAll(async () => {
		await server?.close();
		await s3?.close();
	});

	it('collects every interval until stopped', async () => {
		const ana = await server.api.register('ana');
		const roomId = (await server.api.createGroup(ana.accessToken, [], 'files')).id;
		const image = await uniquePng();
		const ref = await upload(server, ana, roomId, image, { type: 'image/png' });
		const row = await probe(server).row(ref.id);
		const message = await send(server, ana, roomId, [ref]);
		await remove(server, ana, roomId, message.clientMsgId);
		const { blobs } = server.app.files;
		expect(await blobs.size(row?.thumb_sha256 ?? '')).not.toBeNull();

		const timed = new FileCollector(
			{
				db: server.app.db,
				blobs,
				partials: new PartialUploads(path.join(server.dataDir, 'uploads')),
				log: silent,
			},
			{ graceMs: 24 * HOUR * 1000, intervalMs: 50 },
		);
		timed.start();
		try {
			const gone = async (hash: string | null | undefined) => (await blobs.size(hash ?? '')) === null;
			await waitFor(async () => (await gone(row?.sha256)) && (await gone(row?.thumb_sha256)), 10_000);
			expect(await probe(server).row(ref.id)).toBeUndefined();
		} finally {
			await timed.stop();
		}
	});
});

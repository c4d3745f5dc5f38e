import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { messagePage, type ExportRow } from '../../src/lib/protocol/api.ts';
import type { AttachmentRef, MessageEvent } from '../../src/lib/protocol/events.ts';
import { rowToEvent } from '../../src/lib/protocol/rows.ts';
import { describeEachBackend } from '../helpers/backends.ts';
import { connect } from '../helpers/collab.ts';
import { parseCsv } from '../helpers/csv.ts';
import { csvColumns, jsonlFields, readExport } from '../helpers/export-fixtures.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';
import { startTestServer, tmpDir, type TestServer } from '../helpers/server.ts';

/**
 * A message's files survive the mirror (migrations/0009): the history API, search and the room list give them back
 * as the event carried them, exports list each with the SHA-256 of its stored bytes and its address, and
 * `npm run export -- --with-files` writes the bytes themselves beside the export.
 */

type Account = Awaited<ReturnType<TestServer['api']['register']>>;

/** A 1×1 PNG and a minimal PDF: real magic numbers, so the server's sniffing has something to find. */
const PNG = Buffer.from(
	'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
	'base64',
);
const PDF = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const b64 = (s: string) => Buffer.from(s).toString('base64');

/**
 * Uploads `bytes` with two plain tus requests (create, then send everything), and returns the ref a message
 * carries: the upload id and what the server's last answer says the stored file is.
 */
async function upload(
	server: TestServer,
	token: string,
	roomId: string,
	name: string,
	bytes: Buffer,
	type: string,
): Promise<AttachmentRef> {
	const created = await fetch(`${server.url}/api/uploads`, {
		method: 'POST',
		headers: {
			authorization: `Bearer ${token}`,
			'tus-resumable': '1.0.0',
			'upload-length': String(bytes.length),
			'upload-metadata': `roomId ${b64(roomId)},filename ${b64(name)},filetype ${b64(type)}`,
		},
	});
	expect(created.status, await created.text()).toBe(201);
	const location = new URL(created.headers.get('location') ?? '', server.url);
	const id = location.pathname.split('/').pop() ?? '';
	const sent = await fetch(location, {
		method: 'PATCH',
		headers: {
			authorization: `Bearer ${token}`,
			'tus-resumable': '1.0.0',
			'upload-offset': '0',
			'content-type': 'application/offset+octet-stream',
		},
		body: new Uint8Array(bytes),
	});
	expect(sent.status, await sent.text()).toBe(204);
	const header = (h: string) => sent.headers.get(h);
	const number = (h: string) => (header(h) === null ? undefined : Number(header(h)));
	const ref: AttachmentRef = {
		id,
		name,
		size: Number(header('x-chat-size')),
		mediaType: header('x-chat-media-type') ?? '',
		width: number('x-chat-width'),
		height: number('x-chat-height'),
		placeholder: header('x-chat-placeholder') ?? undefined,
	};
	for (const key of ['width', 'height', 'placeholder'] as const) if (ref[key] === undefined) delete ref[key];
	return ref;
}

/** Sends a message with files through the real server, as the app does, and waits until it is durable. */
async function sendWithFiles(
	server: TestServer,
	who: Account,
	roomId: string,
	content: string,
	attachments: AttachmentRef[],
): Promise<MessageEvent> {
	const client = connect(server.wsUrl, roomId, who.accessToken, who.user.id);
	try {
		await client.synced();
		const event = client.write({
			kind: 'message',
			content,
			...(attachments.length > 0 ? { attachments } : {}),
		}) as MessageEvent;
		await client.synced();
		return event;
	} finally {
		client.destroy();
	}
}

async function deleteMessage(server: TestServer, who: Account, roomId: string, targetId: string) {
	const client = connect(server.wsUrl, roomId, who.accessToken, who.user.id);
	try {
		await client.synced();
		client.write({ kind: 'delete', targetId });
		await client.synced();
	} finally {
		client.destroy();
	}
}

const download = async (server: TestServer, url: string, token: string) => {
	const res = await fetch(`${server.url}${url}`, { headers: { authorization: `Bearer ${token}` } });
	expect(res.status, url).toBe(200);
	return Buffer.from(await res.arrayBuffer());
};

/** A room of Ana's and Ben's: one message with three files, one with a file that Ana then deleted. */
async function seedRoom(server: TestServer) {
	const ana = await server.api.register('ana');
	const ben = await server.api.register('ben');
	const roomId = (await server.api.createGroup(ana.accessToken, [ben.user.id], 'files')).id;
	const bytes = randomBytes(3000);
	const files = [
		await upload(server, ana.accessToken, roomId, 'dot.png', PNG, 'image/png'),
		await upload(server, ana.accessToken, roomId, 'Plan für 2027: "final" <v2>.pdf', PDF, 'application/pdf'),
		await upload(server, ana.accessToken, roomId, 'notes.bin', bytes, 'application/octet-stream'),
	];
	const plain = await sendWithFiles(server, ana, roomId, 'no files here', []);
	const withFiles = await sendWithFiles(server, ana, roomId, 'three searchable files', files);
	const secret = await upload(server, ana.accessToken, roomId, 'secret.bin', randomBytes(500), 'text/plain');
	const deleted = await sendWithFiles(server, ana, roomId, 'sent by mistake', [secret]);
	return { ana, ben, roomId, files, bytes, plain, withFiles, secret, deleted };
}

describeEachBackend('files of messages in history and exports', (backend) => {
	let server: TestServer;
	let seeded: Awaited<ReturnType<typeof seedRoom>>;

	beforeAll(async () => {
		server = await startTestServer(backend);
		seeded = await seedRoom(server);
	}, 60_000);
	afterAll(async () => {
		await server?.close();
	});

	it('gives a message back from the history API with its files, exactly as it was sent', async () => {
		const { ben, roomId, files, plain, withFiles } = seeded;
		expect(files[0]).toMatchObject({ mediaType: 'image/png', width: 1, height: 1 });
		const res = await server.api.get(`/api/rooms/${roomId}/messages`, ben.accessToken);
		expect(res.status).toBe(200);
		const page = messagePage.parse(res.body);
		const row = page.items.find((r) => r.clientMsgId === withFiles.clientMsgId);
		// The same refs, key for key and in the same order (jsonb keeps neither: the server puts them back).
		expect(JSON.stringify(row?.attachments)).toBe(JSON.stringify(files));
		expect(row && rowToEvent(row)).toStrictEqual(withFiles);
		// A message without files has no field, as from a server that predates it.
		const bare = page.items.find((r) => r.clientMsgId === plain.clientMsgId);
		expect(bare && 'attachments' in bare).toBe(false);
		expect(bare && rowToEvent(bare)).toStrictEqual(plain);
	});

	it('lists the files in search hits and in the room list', async () => {
		const { ana, files, withFiles, secret, deleted, roomId } = seeded;
		const found = await server.api.get('/api/search?q=searchable', ana.accessToken);
		expect(found.body.items.map((r: ExportRow) => [r.clientMsgId, r.attachments])).toEqual([
			[withFiles.clientMsgId, files],
		]);
		const list = await server.api.get('/api/rooms', ana.accessToken);
		const room = list.body.items.find((r: { id: string }) => r.id === roomId);
		// The newest message is the one to be deleted (by the next test): its file until then.
		expect(room.lastMessage.clientMsgId).toBe(deleted.clientMsgId);
		expect(room.lastMessage.attachments).toEqual([secret]);
	});

	it("masks a deleted message's files like its content, except in an owner's audit export", async () => {
		const { ana, ben, roomId, secret, deleted } = seeded;
		await deleteMessage(server, ana, roomId, deleted.clientMsgId);
		const page = messagePage.parse(
			(await server.api.get(`/api/rooms/${roomId}/messages`, ben.accessToken)).body,
		);
		const row = page.items.find((r) => r.clientMsgId === deleted.clientMsgId);
		expect(row).toMatchObject({ content: null });
		expect(row && 'attachments' in row).toBe(false);
		const list = await server.api.get('/api/rooms', ana.accessToken);
		const room = list.body.items.find((r: { id: string }) => r.id === roomId);
		expect(room.lastMessage.attachments).toBeUndefined();

		const audit = await server.api.get(
			`/api/rooms/${roomId}/export?format=jsonl&includeDeleted=true`,
			ana.accessToken,
		);
		const rows = readExport(audit.body as string, 'jsonl') as unknown as ExportRow[];
		expect(rows.find((r) => r.clientMsgId === deleted.clientMsgId)?.attachments?.map((a) => a.id)).toEqual([
			secret.id,
		]);
	});

	it('exports each file with the SHA-256 of its stored bytes and its address, in JSONL and CSV', async () => {
		const { ben, roomId, files, bytes, plain, withFiles, deleted } = seeded;
		const jsonl = await server.api.get(`/api/rooms/${roomId}/export?format=jsonl`, ben.accessToken);
		expect(jsonl.status).toBe(200);
		const rows = readExport(jsonl.body as string, 'jsonl') as unknown as ExportRow[];
		const row = rows.find((r) => r.clientMsgId === withFiles.clientMsgId) as ExportRow;
		expect(Object.keys(row)).toEqual([...jsonlFields, 'attachments']);
		expect(row.attachments?.map((a) => Object.keys(a))).toEqual(
			files.map(() => ['id', 'name', 'size', 'mediaType', 'sha256', 'url']),
		);
		expect(row.attachments).toEqual(
			files.map((f) => ({
				id: f.id,
				name: f.name,
				size: f.size,
				mediaType: f.mediaType,
				sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
				url: `/api/files/${f.id}`,
			})),
		);
		// The hash is the bytes a member downloads from the address; the sender's own bytes where none were changed.
		for (const file of row.attachments ?? [])
			expect(sha256(await download(server, file.url, ben.accessToken)), file.name).toBe(file.sha256);
		expect(row.attachments?.[1]?.sha256).toBe(sha256(PDF));
		expect(row.attachments?.[2]?.sha256).toBe(sha256(bytes));
		expect(Object.keys(rows.find((r) => r.clientMsgId === plain.clientMsgId) ?? {})).toEqual(jsonlFields);
		expect(rows.find((r) => r.clientMsgId === deleted.clientMsgId)?.attachments).toBeUndefined();

		const csv = await server.api.get(`/api/rooms/${roomId}/export?format=csv`, ben.accessToken);
		const [header, ...records] = parseCsv(csv.body as string);
		expect(header?.at(-1)).toBe('attachments');
		expect(header).toEqual(csvColumns);
		const cell = (id: string) =>
			records.find((r) => r[csvColumns.indexOf('client_msg_id')] === id)?.[csvColumns.indexOf('attachments')];
		expect(JSON.parse(cell(withFiles.clientMsgId) ?? '')).toEqual(row.attachments);
		expect(cell(plain.clientMsgId)).toBe('');
		expect(cell(deleted.clientMsgId)).toBe('');
	});
});

const cli = fileURLToPath(new URL('../../server/export/cli.ts', import.meta.url));

function runCli(
	args: string[],
	env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
	return new Promise((resolve, reject) => {
		const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('S3_')));
		const child = spawn(process.execPath, [cli, ...args], {
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

/** The files of a `--with-files` directory: name → SHA-256 of the bytes. */
function hashesIn(dir: string): Record<string, string> {
	return Object.fromEntries(
		fs.readdirSync(dir).map((name) => [name, sha256(fs.readFileSync(path.join(dir, name)))]),
	);
}

const adminUrl = inject('postgresAdminUrl');
if (!adminUrl) {
	const message = 'Postgres is not reachable: the export --with-files tests cannot run';
	if (process.env.CI) throw new Error(`${message}, and CI requires them.`);
	console.warn(`\n!!! ${message}. SKIPPING them. Set TEST_DATABASE_URL to run them.\n`);
}

describe.skipIf(!adminUrl)('npm run export -- --with-files', () => {
	let server: TestServer;
	let seeded: Awaited<ReturnType<typeof seedRoom>>;
	const work = tmpDir('export-files');
	const env = () => ({ DATABASE_URL: server.databaseUrl as string, DATA_DIR: server.dataDir });

	beforeAll(async () => {
		server = await startTestServer('postgres');
		seeded = await seedRoom(server);
	}, 60_000);
	afterAll(async () => {
		await server?.close();
		fs.rmSync(work, { recursive: true, force: true });
	});

	it("writes every listed file's bytes beside the export, named by id and a safe name, and their hashes match", async () => {
		const { roomId, files, bytes, withFiles, deleted, secret } = seeded;
		await deleteMessage(server, seeded.ana, roomId, deleted.clientMsgId);
		const out = path.join(work, 'room.jsonl');
		const result = await runCli(['--room', roomId, '--format', 'jsonl', '--out', out, '--with-files'], env());

		expect(result.stderr).toMatch(
			/^Exported 4 rows to .*room\.jsonl in \d+\.\d s\nWrote 3 files \(\d+(\.\d)? k?B\) to .*room\.jsonl-files\n$/,
		);
		expect(result.code).toBe(0);
		const rows = readExport(fs.readFileSync(out, 'utf8'), 'jsonl') as unknown as ExportRow[];
		const listed = rows.find((r) => r.clientMsgId === withFiles.clientMsgId)?.attachments ?? [];
		expect(listed.map((a) => a.id)).toEqual(files.map((f) => f.id));
		const [png, pdf, bin] = files as [AttachmentRef, AttachmentRef, AttachmentRef];
		const written = hashesIn(`${out}-files`);
		expect(written).toEqual({
			[`${png.id}-dot.png`]: listed[0]?.sha256,
			// `:`, `"`, `<` and `>` are no part of a portable file name.
			[`${pdf.id}-Plan für 2027_ _final_ _v2_.pdf`]: sha256(PDF),
			[`${bin.id}-notes.bin`]: sha256(bytes),
		});
		expect(Object.values(written).sort()).toEqual(listed.map((a) => a.sha256).sort());

		// Run again with the deleted message's file: only that one is copied, the others are there already.
		const audit = await runCli(
			['--room', roomId, '--format', 'csv', '--out', out, '--with-files', '--include-deleted'],
			env(),
		);
		expect(audit.code).toBe(0);
		expect(audit.stderr).toMatch(/\nWrote 1 file \(500 B\) to .*room\.jsonl-files; 3 already there\n$/);
		expect(Object.keys(hashesIn(`${out}-files`))).toContain(`${secret.id}-secret.bin`);
	});

	it('reports files missing from the store or damaged there, copies the rest, writes the export, and exits 3', async () => {
		const { roomId, files, bytes, withFiles } = seeded;
		const [png, pdf, bin] = files as [AttachmentRef, AttachmentRef, AttachmentRef];
		const blob = (hash: string) => path.join(server.dataDir, 'files', hash.slice(0, 2), hash);
		const hash = sha256(bytes);
		fs.rmSync(blob(hash));
		const damaged = Buffer.from(PDF);
		damaged[0] = 0;
		fs.writeFileSync(blob(sha256(PDF)), damaged);
		const out = path.join(work, 'missing.jsonl');
		const result = await runCli(['--room', roomId, '--format', 'jsonl', '--out', out, '--with-files'], env());

		expect(result.code).toBe(3);
		expect(result.stderr).toContain(
			`export: file ${bin.id} ("notes.bin") of message ${withFiles.clientMsgId}: not in the blob store (sha256 ${hash})\n`,
		);
		expect(result.stderr).toContain(
			`export: file ${pdf.id} (${JSON.stringify(pdf.name)}) of message ${withFiles.clientMsgId}: the stored bytes ` +
				`hash to ${sha256(damaged)}, not to ${sha256(PDF)}: not written\n`,
		);
		expect(result.stderr).toMatch(/\nWrote 1 file \(.*\) to .*missing\.jsonl-files; 2 could not be copied/);
		expect(readExport(fs.readFileSync(out, 'utf8'), 'jsonl')).toHaveLength(4);
		// Only whole, right files: nothing of the damaged one, no partial file left behind.
		expect(fs.readdirSync(`${out}-files`)).toEqual([`${png.id}-dot.png`]);
	});

	it('refuses --with-files without --out or with a value (exit 2), and a DATA_DIR without the files (exit 1)', async () => {
		const { roomId } = seeded;
		for (const args of [
			['--room', roomId, '--format', 'jsonl', '--with-files'],
			['--room', roomId, '--format', 'jsonl', '--out', path.join(work, 'x.jsonl'), '--with-files=yes'],
		]) {
			const result = await runCli(args, env());
			expect(result.code, args.join(' ')).toBe(2);
			expect(result.stderr.split('\n')[0], args.join(' ')).toContain('--with-files');
			expect(result.stderr).toContain('Usage: npm run export');
		}
		const elsewhere = tmpDir('export-no-files');
		try {
			const out = path.join(work, 'wrong-dir.jsonl');
			const result = await runCli(['--room', roomId, '--format', 'jsonl', '--out', out, '--with-files'], {
				...env(),
				DATA_DIR: elsewhere,
			});
			expect(result.code).toBe(1);
			expect(result.stderr).toBe(
				`export: no stored files under ${path.join(elsewhere, 'files')}: set DATA_DIR to the server's, or ` +
					'S3_BUCKET and the other S3_* settings if the server keeps its files in a bucket\n',
			);
			expect(fs.existsSync(out)).toBe(false);
		} finally {
			fs.rmSync(elsewhere, { recursive: true, force: true });
		}
	});

	it("copies from the server's S3 bucket when S3_BUCKET is set", async () => {
		const s3: TestS3 = await startS3();
		const s3Env = {
			S3_BUCKET: s3.options.bucket,
			S3_ENDPOINT: s3.options.endpoint as string,
			S3_ACCESS_KEY_ID: s3.options.accessKeyId as string,
			S3_SECRET_ACCESS_KEY: s3.options.secretAccessKey as string,
			S3_FORCE_PATH_STYLE: 'true',
		};
		const node = await startTestServer('postgres', s3Env);
		try {
			const ana = await node.api.register('ana');
			const roomId = (await node.api.createGroup(ana.accessToken, [], 'bucket')).id;
			const bytes = randomBytes(70_000);
			const file = await upload(node, ana.accessToken, roomId, 'big.bin', bytes, 'application/octet-stream');
			await sendWithFiles(node, ana, roomId, 'from the bucket', [file]);
			const out = path.join(work, 's3.jsonl');
			const result = await runCli(['--room', roomId, '--format', 'jsonl', '--out', out, '--with-files'], {
				DATABASE_URL: node.databaseUrl as string,
				DATA_DIR: fs.mkdtempSync(path.join(work, 's3-data-')),
				...s3Env,
			});
			expect(result.stderr).toMatch(/\nWrote 1 file \(70\.0 kB\) to /);
			expect(result.code).toBe(0);
			expect(hashesIn(`${out}-files`)).toEqual({ [`${file.id}-big.bin`]: sha256(bytes) });
		} finally {
			await node.close();
			await s3.close();
		}
	});
});

import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { thumbHashToApproximateAspectRatio, thumbHashToAverageRGBA, thumbHashToRGBA } from 'thumbhash';
import { Upload } from 'tus-js-client';
import type { AttachmentRef } from '../../src/lib/protocol/events.ts';
import { connect, waitFor } from '../helpers/collab.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

type Account = Awaited<ReturnType<TestServer['api']['register']>>;

/** A 1×1 PNG and a minimal PDF: real magic numbers, so the server's sniffing has something to find. */
const PNG = Buffer.from(
	'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
	'base64',
);
const PDF = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');

/** Uploads `bytes` with tus-js-client (as the app will); resolves with the upload's id. */
function upload(
	url: string,
	token: string,
	bytes: Buffer,
	metadata: Record<string, string>,
	options: { retryDelays?: number[]; onProgress?: (sent: number) => void } = {},
): Promise<string> {
	return new Promise((resolve, reject) => {
		const tus = new Upload(bytes, {
			endpoint: `${url}/api/uploads`,
			headers: { authorization: `Bearer ${token}` },
			metadata,
			retryDelays: options.retryDelays ?? [],
			onProgress: options.onProgress,
			onError: reject,
			onSuccess: ({ lastResponse }) => {
				const id = tus.url?.split('/').pop() ?? '';
				lastAnswers.set(id, (name) => lastResponse.getHeader(name) ?? null);
				resolve(id);
			},
		});
		tus.start();
	});
}

/** The headers of each upload's last answer (what the stored file is), by upload id. */
const lastAnswers = new Map<string, (name: string) => string | null>();

/** A refused upload's status and message, from tus-js-client's error. */
async function refusal(promise: Promise<string>): Promise<{ status: number; body: string }> {
	const error = (await promise.then(
		() => {
			throw new Error('the upload was accepted');
		},
		(e: unknown) => e,
	)) as { originalResponse?: { getStatus(): number; getBody(): string } };
	return { status: error.originalResponse?.getStatus() ?? 0, body: error.originalResponse?.getBody() ?? '' };
}

describe('attachments: upload and serving (issue 19)', () => {
	let server: TestServer;
	let ana: Account;
	let ben: Account;
	let cleo: Account;
	let roomId: string;

	beforeAll(async () => {
		server = await startTestServer('pglite', { ATTACHMENT_MAX_BYTES: String(10 * 1024 * 1024) });
		ana = await server.api.register('ana');
		ben = await server.api.register('ben');
		cleo = await server.api.register('cleo');
		roomId = (await server.api.createGroup(ana.accessToken, [ben.user.id], 'files')).id;
	});
	afterAll(async () => {
		await server?.close();
	});

	const download = (id: string, token?: string, headers: Record<string, string> = {}) =>
		fetch(`${server.url}/api/files/${id}`, {
			headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) },
		});
	const thumb = (id: string, token?: string) =>
		fetch(`${server.url}/api/files/${id}/thumb`, {
			headers: token ? { authorization: `Bearer ${token}` } : {},
		});

	it('stores an image and a PDF for the room: members read them, the image inline, the PDF as a download', async () => {
		const image = await upload(server.url, ana.accessToken, PNG, {
			roomId,
			filename: 'dot.png',
			filetype: 'image/png',
		});
		const pdf = await upload(server.url, ana.accessToken, PDF, {
			roomId,
			filename: 'Plan für 2027.pdf',
			filetype: 'application/pdf',
		});

		const got = await download(image, ben.accessToken);
		expect(got.status).toBe(200);
		expect(Buffer.from(await got.arrayBuffer()).equals(PNG)).toBe(true);
		expect(got.headers.get('content-type')).toBe('image/png');
		expect(got.headers.get('content-disposition')).toMatch(/^inline; filename="dot.png"/);
		expect(got.headers.get('x-content-type-options')).toBe('nosniff');

		const doc = await download(pdf, ben.accessToken);
		expect(doc.status).toBe(200);
		expect(Buffer.from(await doc.arrayBuffer()).equals(PDF)).toBe(true);
		expect(doc.headers.get('content-disposition')).toBe(
			`attachment; filename="Plan f_r 2027.pdf"; filename*=UTF-8''${encodeURIComponent('Plan für 2027.pdf')}`,
		);

		// A range, as a player or a resumed download asks.
		const part = await download(pdf, ben.accessToken, { range: 'bytes=0-7' });
		expect(part.status).toBe(206);
		expect(await part.text()).toBe('%PDF-1.4');
		expect(part.headers.get('content-range')).toBe(`bytes 0-7/${PDF.length}`);
		expect((await download(pdf, ben.accessToken, { range: 'bytes=9999-' })).status).toBe(416);
	});

	it('a client that lost the last answer resumes a finished upload: it is whole, and says what was stored', async () => {
		const id = await upload(server.url, ana.accessToken, PNG, {
			roomId,
			filename: 'again.png',
			filetype: 'image/png',
		});
		const last = lastAnswers.get(id);
		// What tus-js-client does after a reload with the upload's URL kept: HEAD, then done when offset = length.
		const resumed = await new Promise<{ offset: number; headers: (name: string) => string | undefined }>(
			(resolve, reject) => {
				const tus = new Upload(PNG, {
					uploadUrl: `${server.url}/api/uploads/${id}`,
					headers: { authorization: `Bearer ${ana.accessToken}` },
					retryDelays: [],
					onError: reject,
					onSuccess: ({ lastResponse }) =>
						resolve({
							offset: Number(lastResponse.getHeader('upload-offset')),
							headers: (name) => lastResponse.getHeader(name),
						}),
				});
				tus.start();
			},
		);
		for (const name of [
			'x-chat-media-type',
			'x-chat-size',
			'x-chat-width',
			'x-chat-height',
			'x-chat-placeholder',
		])
			expect(resumed.headers(name), name).toBe(last?.(name) ?? undefined);
		expect(resumed.offset).toBe(Number(last?.('x-chat-size')));
		// Someone else's upload id tells them nothing.
		const other = await fetch(`${server.url}/api/uploads/${id}`, {
			method: 'HEAD',
			headers: { authorization: `Bearer ${ben.accessToken}`, 'tus-resumable': '1.0.0' },
		});
		expect(other.status).toBe(404);
		expect(other.headers.get('x-chat-media-type')).toBeNull();
	});

	it('serves HTML and SVG as downloads that the browser does not sniff, whatever the sender said they are', async () => {
		for (const [filename, filetype, bytes] of [
			['page.html', 'text/html', '<!doctype html><script>alert(1)</script>'],
			[
				'logo.svg',
				'image/svg+xml',
				'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
			],
			['fake.png', 'image/png', '<html><script>alert(1)</script></html>'],
		] as const) {
			const id = await upload(server.url, ana.accessToken, Buffer.from(bytes), {
				roomId,
				filename,
				filetype,
			});
			const got = await download(id, ben.accessToken);
			expect(got.status, filename).toBe(200);
			expect(got.headers.get('content-type'), filename).toBe('application/octet-stream');
			expect(got.headers.get('content-disposition'), filename).toMatch(/^attachment;/);
			expect(got.headers.get('x-content-type-options'), filename).toBe('nosniff');
			expect(got.headers.get('content-security-policy'), filename).toContain('sandbox');
		}
	});

	it('takes the metadata out of a photo (where it was taken) and says what the stored file is', async () => {
		const photo = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3366cc' } })
			.jpeg()
			.withExif({
				IFD0: { Copyright: 'Ana' },
				IFD3: {
					GPSLatitudeRef: 'N',
					GPSLatitude: '51/1 30/1 0/1',
					GPSLongitudeRef: 'W',
					GPSLongitude: '0/1 7/1 0/1',
				},
			})
			.toBuffer();
		expect((await sharp(photo).metadata()).exif).toBeDefined();
		const id = await upload(server.url, ana.accessToken, photo, {
			roomId,
			filename: 'here.jpg',
			filetype: 'image/jpeg',
		});
		const stored = Buffer.from(await (await download(id, ben.accessToken)).arrayBuffer());
		const meta = await sharp(stored).metadata();
		expect(meta.exif).toBeUndefined();
		expect(stored.includes(Buffer.from('GPS'))).toBe(false);
		expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 64, 48]);
		const answer = lastAnswers.get(id);
		expect(answer?.('x-chat-media-type')).toBe('image/jpeg');
		expect(answer?.('x-chat-size')).toBe(String(stored.length));
		expect([answer?.('x-chat-width'), answer?.('x-chat-height')]).toEqual(['64', '48']);
	});

	it('makes a WebP thumbnail of an image, never larger than 480 pixels, for the members of its room only', async () => {
		const photo = await sharp({ create: { width: 1200, height: 800, channels: 3, background: '#3366cc' } })
			.jpeg()
			.withExif({ IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '51/1 30/1 0/1' } })
			.toBuffer();
		const id = await upload(server.url, ana.accessToken, photo, {
			roomId,
			filename: 'wide.jpg',
			filetype: 'image/jpeg',
		});
		const got = await thumb(id, ben.accessToken);
		expect(got.status).toBe(200);
		expect(got.headers.get('content-type')).toBe('image/webp');
		expect(got.headers.get('content-disposition')).toMatch(/^inline; filename="wide.webp"/);
		expect(got.headers.get('x-content-type-options')).toBe('nosniff');
		expect(got.headers.get('content-security-policy')).toBe("default-src 'none'; sandbox");
		expect(got.headers.get('cache-control')).toBe('private, max-age=31536000, immutable');
		const meta = await sharp(Buffer.from(await got.arrayBuffer())).metadata();
		expect([meta.format, meta.width, meta.height]).toEqual(['webp', 480, 320]);
		expect(Math.max(meta.width, meta.height)).toBeLessThanOrEqual(480);
		expect(meta.exif).toBeUndefined();

		// A small image keeps its size: a thumbnail is never enlarged.
		const dot = await upload(server.url, ana.accessToken, PNG, {
			roomId,
			filename: 'dot.png',
			filetype: 'image/png',
		});
		const small = await sharp(
			Buffer.from(await (await thumb(dot, ben.accessToken)).arrayBuffer()),
		).metadata();
		expect([small.format, small.width, small.height]).toEqual(['webp', 1, 1]);

		// The same answer as the file's for anyone else, and for an id that names nothing.
		const nothing = await thumb('0'.repeat(32), ben.accessToken);
		expect(nothing.status).toBe(404);
		const stranger = await thumb(id, cleo.accessToken);
		expect(stranger.status).toBe(404);
		expect(await stranger.json()).toEqual(await nothing.json());
		expect((await thumb(id)).status).toBe(401);

		// Not an image: no thumbnail.
		const pdf = await upload(server.url, ana.accessToken, PDF, {
			roomId,
			filename: 'plan.pdf',
			filetype: 'application/pdf',
		});
		const none = await thumb(pdf, ben.accessToken);
		expect(none.status).toBe(404);
		expect(await none.json()).toEqual({ error: { code: 'not_found', message: 'file has no thumbnail' } });
	});

	it("says an image's placeholder (a ThumbHash) in the upload's last answer", async () => {
		const photo = await sharp({ create: { width: 300, height: 150, channels: 3, background: '#3366cc' } })
			.png()
			.toBuffer();
		const id = await upload(server.url, ana.accessToken, photo, {
			roomId,
			filename: 'blue.png',
			filetype: 'image/png',
		});
		const placeholder = lastAnswers.get(id)?.('x-chat-placeholder') ?? '';
		expect(placeholder).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
		expect(placeholder.length).toBeLessThanOrEqual(64);
		expect(Buffer.from(placeholder, 'base64').toString('base64')).toBe(placeholder);
		const hash = Buffer.from(placeholder, 'base64');
		const decoded = thumbHashToRGBA(hash);
		expect(decoded.w * decoded.h * 4).toBe(decoded.rgba.length);
		expect(thumbHashToApproximateAspectRatio(hash)).toBeCloseTo(2, 0);
		// The blur has the picture's colour: #3366cc.
		const { r, g, b } = thumbHashToAverageRGBA(hash);
		expect([r * 255, g * 255, b * 255].map(Math.round)).toEqual([
			expect.closeTo(0x33, -1),
			expect.closeTo(0x66, -1),
			expect.closeTo(0xcc, -1),
		]);

		const pdf = await upload(server.url, ana.accessToken, PDF, {
			roomId,
			filename: 'plan.pdf',
			filetype: 'application/pdf',
		});
		expect(lastAnswers.get(pdf)?.('x-chat-placeholder')).toBeNull();
	});

	it('stores an image it cannot read (its metadata may still be in it) as a download, without a thumbnail', async () => {
		const photo = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#3366cc' } })
			.jpeg()
			.withExif({ IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '51/1 30/1 0/1' } })
			.toBuffer();
		// Cut short: its header (and the GPS position in it) reads, its pixels do not.
		const cut = photo.subarray(0, Math.floor(photo.length / 2));
		const id = await upload(server.url, ana.accessToken, cut, {
			roomId,
			filename: 'cut.jpg',
			filetype: 'image/jpeg',
		});
		const answer = lastAnswers.get(id);
		expect(answer?.('x-chat-media-type')).toBe('application/octet-stream');
		expect(answer?.('x-chat-width')).toBeNull();
		expect(answer?.('x-chat-placeholder')).toBeNull();
		const got = await download(id, ben.accessToken);
		expect(got.status).toBe(200);
		expect(got.headers.get('content-type')).toBe('application/octet-stream');
		expect(got.headers.get('content-disposition')).toMatch(/^attachment; filename="cut.jpg"/);
		expect(Buffer.from(await got.arrayBuffer()).equals(cut)).toBe(true);
		expect((await thumb(id, ben.accessToken)).status).toBe(404);
	});

	it('lets no one else read a file: not a non-member, not a signed-out request, not a removed member', async () => {
		const id = await upload(server.url, ana.accessToken, PNG, {
			roomId,
			filename: 'x.png',
			filetype: 'image/png',
		});
		expect((await download(id)).status).toBe(401);
		expect((await download(id, cleo.accessToken)).status).toBe(404);
		expect((await download('no-such-file', ben.accessToken)).status).toBe(404);
		expect((await download(id, ben.accessToken)).status).toBe(200);
		const removed = await server.api.delete(`/api/rooms/${roomId}/members/${ben.user.id}`, ana.accessToken);
		expect(removed.status).toBeLessThan(300);
		expect((await download(id, ben.accessToken)).status).toBe(404);
		const back = await server.api.post(
			`/api/rooms/${roomId}/members`,
			{ userId: ben.user.id },
			ana.accessToken,
		);
		expect(back.status).toBe(201);
		expect((await download(id, ben.accessToken)).status).toBe(200);
	});

	it('refuses uploads for a room the sender is not in, over the size limit, or without a room, and says why', async () => {
		const notMember = await refusal(
			upload(server.url, cleo.accessToken, PNG, { roomId, filename: 'x.png', filetype: 'image/png' }),
		);
		expect(notMember.status).toBe(403);
		expect(JSON.parse(notMember.body)).toEqual({
			error: { code: 'forbidden', message: 'you are not a member of this room' },
		});

		const big = await refusal(
			upload(server.url, ana.accessToken, Buffer.alloc(11 * 1024 * 1024), {
				roomId,
				filename: 'big.bin',
				filetype: 'application/octet-stream',
			}),
		);
		expect(big.status).toBe(413);
		expect(JSON.parse(big.body).error.message).toBe('this file is 11 MB; files of up to 10 MB can be sent');

		const noRoom = await refusal(upload(server.url, ana.accessToken, PNG, { filename: 'x.png' }));
		expect(noRoom.status).toBe(400);
		expect(JSON.parse(noRoom.body).error.message).toMatch(/names no room/);

		const anonymous = await fetch(`${server.url}/api/uploads`, {
			method: 'POST',
			headers: { 'tus-resumable': '1.0.0', 'upload-length': '10' },
		});
		expect(anonymous.status).toBe(401);
	});

	it('lets a message carry only files its sender uploaded for its room, complete, as stored', async () => {
		const other = (await server.api.createGroup(ana.accessToken, [ben.user.id], 'elsewhere')).id;
		const meta = (room: string, filename: string) => ({ roomId: room, filename, filetype: 'image/png' });
		const mine = await upload(server.url, ana.accessToken, PNG, meta(roomId, 'mine.png'));
		const bens = await upload(server.url, ben.accessToken, PNG, meta(roomId, 'bens.png'));
		const elsewhere = await upload(server.url, ana.accessToken, PNG, meta(other, 'other.png'));
		// Created, never sent: not complete.
		const created = await fetch(`${server.url}/api/uploads`, {
			method: 'POST',
			headers: {
				authorization: `Bearer ${ana.accessToken}`,
				'tus-resumable': '1.0.0',
				'upload-length': '100',
				'upload-metadata': `roomId ${btoa(roomId)},filename ${btoa('half.png')}`,
			},
		});
		expect(created.status).toBe(201);
		const incomplete = (created.headers.get('location') ?? '').split('/').pop() ?? '';
		// As the client does: what the upload's last answer said, placeholder included.
		const placeholderOf = (id: string) => lastAnswers.get(id)?.('x-chat-placeholder');
		const ref = (id: string, changes: Partial<AttachmentRef> = {}): AttachmentRef => ({
			id,
			name: 'a.png',
			size: PNG.length,
			mediaType: 'image/png',
			width: 1,
			height: 1,
			...(placeholderOf(id) ? { placeholder: placeholderOf(id) ?? '' } : {}),
			...changes,
		});
		expect(ref(mine).placeholder).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);

		const a = connect(server.wsUrl, roomId, ana.accessToken, ana.user.id);
		const b = connect(server.wsUrl, roomId, ben.accessToken, ben.user.id);
		try {
			await Promise.all([a.synced(), b.synced()]);
			const good = a.write({ kind: 'message', content: 'a picture', attachments: [ref(mine)] });
			await a.synced();
			await waitFor(
				() => b.messages().some((m) => m.clientMsgId === good.clientMsgId),
				5_000,
				'Ben to see it',
			);
			expect(b.messages().find((m) => m.clientMsgId === good.clientMsgId)).toMatchObject({
				attachments: [ref(mine)],
			});

			const refused: [string, AttachmentRef, RegExp][] = [
				['no such file', ref('0'.repeat(32)), /no such file was uploaded/],
				["Ben's file", ref(bens), /not a file you uploaded for this room/],
				["another room's file", ref(elsewhere), /not a file you uploaded for this room/],
				['a file still uploading', ref(incomplete), /not completely uploaded yet/],
				['the wrong size', ref(mine, { size: 5 }), /stored file is \d+ bytes of image\/png/],
				['the wrong type', ref(mine, { mediaType: 'image/gif' }), /stored file is \d+ bytes of image\/png/],
				['the wrong width', ref(mine, { width: 2 }), /the stored file is 1×1 pixels/],
				['the wrong height', ref(mine, { height: 100 }), /the stored file is 1×1 pixels/],
				['another placeholder', ref(mine, { placeholder: 'AAAAAAAA' }), /the stored file's placeholder is /],
			];
			for (const [what, attachment, reason] of refused) {
				const sent = a.write({ kind: 'message', content: what, attachments: [attachment] });
				await waitFor(
					() => a.sync.messages.find((m) => m.clientMsgId === sent.clientMsgId)?.status === 'failed',
					10_000,
					`the message with ${what} to be refused`,
				);
				expect(a.sync.messages.find((m) => m.clientMsgId === sent.clientMsgId)?.reason, what).toMatch(reason);
			}
			// Nobody saw any of them; what was valid stays.
			await a.synced();
			expect(b.messages().map((m) => m.content)).toEqual(['a picture']);
			const mirrored = await server.api.get(`/api/rooms/${roomId}/messages`, ben.accessToken);
			expect(mirrored.body.items.map((m: { content: string }) => m.content)).toEqual(['a picture']);
		} finally {
			a.destroy();
			b.destroy();
		}
	});

	it('resumes an upload cut half-way from where it stopped', async () => {
		const size = 6 * 1024 * 1024;
		const bytes = randomBytes(size);
		const proxy = await cuttingProxy(Number(new URL(server.url).port), Math.floor(size / 2));
		try {
			const id = await upload(
				`http://127.0.0.1:${proxy.port}`,
				ana.accessToken,
				bytes,
				{
					roomId,
					filename: 'big.bin',
					filetype: 'application/octet-stream',
				},
				{ retryDelays: [100, 300, 1000] },
			);
			expect(proxy.cuts).toBe(1);
			const after = proxy.bytesAfterCut;
			console.log(
				`resumed upload: ${size} bytes, ${after} sent after the cut (${((after / size) * 100).toFixed(1)} %)`,
			);
			expect(after).toBeLessThan(0.6 * size);
			const got = Buffer.from(await (await download(id, ben.accessToken)).arrayBuffer());
			expect(got.length).toBe(size);
			expect(createHash('sha256').update(got).digest('hex')).toBe(
				createHash('sha256').update(bytes).digest('hex'),
			);
		} finally {
			proxy.close();
		}
	});
});

/**
 * A TCP proxy to the server that drops the first connection once `cutAfter` bytes have gone through it towards the
 * server, and counts what goes towards the server after that.
 */
async function cuttingProxy(port: number, cutAfter: number) {
	let sent = 0;
	const state = { cuts: 0, bytesAfterCut: 0, port: 0 };
	const sockets = new Set<net.Socket>();
	const server = net.createServer((client) => {
		const upstream = net.connect(port, '127.0.0.1');
		sockets.add(client).add(upstream);
		const drop = () => {
			client.destroy();
			upstream.destroy();
		};
		client.on('error', drop).on('close', drop);
		upstream.on('error', drop).on('close', drop);
		client.on('data', (chunk: Buffer) => {
			if (state.cuts > 0) state.bytesAfterCut += chunk.length;
			else if ((sent += chunk.length) >= cutAfter) {
				state.cuts++;
				return drop();
			}
			upstream.write(chunk);
		});
		upstream.pipe(client);
	});
	await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
	state.port = (server.address() as net.AddressInfo).port;
	return Object.assign(state, {
		close() {
			for (const socket of sockets) socket.destroy();
			server.close();
		},
	});
}

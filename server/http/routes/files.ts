import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiErrorCode } from '#protocol/errors.ts';
import { INLINE_IMAGE_TYPES, uploadId } from '#protocol/events.ts';
import * as attachments from '../../data/attachments.ts';
import * as rooms from '../../data/rooms.ts';
import { AppError, forbidden, notFound } from '../../errors.ts';
import { BlobNotFound, type BlobStore } from '../../files/blob-store.ts';
import { finishedUploadHeaders, megabytes, UPLOADER_HEADER } from '../../files/uploads.ts';
import { requireUser } from '../auth.ts';
import type { HttpDeps } from '../deps.ts';

const codeByStatus: Record<number, ApiErrorCode> = {
	400: 'bad_request',
	401: 'unauthorized',
	403: 'forbidden',
	404: 'not_found',
	409: 'conflict',
	410: 'not_found',
	412: 'bad_request',
	413: 'payload_too_large',
	415: 'unsupported_media_type',
	460: 'bad_request',
	503: 'unavailable',
};

/**
 * Attachments (issue 19): resumable uploads with the tus protocol under `/api/uploads` (server/files/uploads.ts),
 * and the stored files under `/api/files/:id` (an image's thumbnail under `/api/files/:id/thumb`), for members of
 * the file's room only (checked on every request).
 */
export function fileRoutes(app: FastifyInstance, deps: HttpDeps) {
	// tus sends the bytes as `application/offset+octet-stream`: passed through to the upload server unread.
	app.addContentTypeParser('application/offset+octet-stream', (_request, payload, done) =>
		done(null, payload),
	);
	const forward = forwardUpload(deps);
	app.route({ method: ['POST', 'OPTIONS'], url: '/api/uploads', handler: forward });
	app.route({ method: ['HEAD', 'PATCH', 'DELETE', 'OPTIONS'], url: '/api/uploads/:id', handler: forward });
	app.get('/api/files/:id', serveFile(deps));
	app.get('/api/files/:id/thumb', serveThumb(deps));
}

/** Authenticates a tus request, checks it is the uploader's and still allowed, and hands it to the upload server. */
function forwardUpload({ db, tokens, files, config }: HttpDeps) {
	return async (request: FastifyRequest<{ Params: { id?: string } }>, reply: FastifyReply) => {
		const user = await requireUser(request, tokens);
		const id = request.params.id;
		if (id !== undefined) {
			const upload = uploadId.safeParse(id).success ? await attachments.get(db, id) : null;
			if (!upload || upload.uploaderId !== user.userId) throw notFound('upload');
			if (!(await rooms.roleOf(db, upload.roomId, user.userId)))
				throw forbidden('you are no longer a member of the room this file was for');
			// Complete and stored (its partial bytes are gone): a client that lost the last answer (a reload, a cut
			// connection) asks where the upload is, and learns it is whole and what was stored.
			if (request.method === 'HEAD' && upload.sha256 && upload.mediaType)
				return reply
					.code(200)
					.headers({
						'tus-resumable': '1.0.0',
						'upload-offset': String(upload.size),
						'upload-length': String(upload.size),
						'cache-control': 'no-store',
						...finishedUploadHeaders({ ...upload, mediaType: upload.mediaType }),
					})
					.send();
		} else if (request.method === 'POST') {
			const length = Number(request.headers['upload-length']);
			if (Number.isSafeInteger(length) && length > config.ATTACHMENT_MAX_BYTES)
				throw new AppError(
					'payload_too_large',
					`this file is ${megabytes(length)}; files of up to ${megabytes(config.ATTACHMENT_MAX_BYTES)} can be sent`,
				);
		}
		const headers = new Headers();
		for (const [name, value] of Object.entries(request.headers))
			if (value !== undefined && name !== UPLOADER_HEADER) headers.set(name, [value].flat().join(', '));
		headers.set(UPLOADER_HEADER, user.userId);
		const body = request.method === 'PATCH' && request.body instanceof Readable ? request.body : undefined;
		// A connection dropped mid-upload (the case tus exists for) must end the upload server's write at once, with
		// what arrived kept, rather than leave it waiting for bytes that never come (and hold the upload's lock).
		request.raw.once('close', () => {
			if (body && !request.raw.complete) body.destroy(new Error('the connection closed during the upload'));
		});
		const response = await files.uploads.handle(
			new Request(`http://localhost${request.url}`, {
				method: request.method,
				headers,
				body: body ? (Readable.toWeb(body) as ReadableStream) : undefined,
				duplex: 'half',
			} as RequestInit),
		);
		if (request.method === 'DELETE' && response.status === 204 && id) await attachments.remove(db, id);
		if (response.status >= 400) {
			const message = (await response.text()).trim() || response.statusText || 'the upload was refused';
			const code = codeByStatus[response.status] ?? 'bad_request';
			return reply.code(response.status).send({ error: { code, message } });
		}
		reply.code(response.status);
		response.headers.forEach((value, name) => {
			if (name !== 'content-length') reply.header(name, value);
		});
		return reply.send(
			response.status === 204 || request.method === 'HEAD' ? undefined : await response.text(),
		);
	};
}

type FileRequest = FastifyRequest<{ Params: { id: string } }>;

/** A stored file, to members of its room only, whole or a range; inline only when it is a safe image. */
function serveFile({ db, tokens, files }: HttpDeps) {
	return async (request: FileRequest, reply: FastifyReply) => {
		const file = await memberFile(request, { db, tokens });
		const size = file.size;
		const range = parseRange(request.headers.range, size);
		if (range === 'unsatisfiable')
			return reply
				.code(416)
				.header('content-range', `bytes */${size}`)
				.send({
					error: { code: 'bad_request', message: `the range asked for is outside the file's ${size} bytes` },
				});
		const type = file.mediaType ?? 'application/octet-stream';
		const inline = INLINE_IMAGE_TYPES.has(type);
		const stream = await openBlob(files.blobs, file.sha256, range ?? undefined);
		storedFileHeaders(reply.code(range ? 206 : 200), {
			type: inline || type === 'application/pdf' ? type : 'application/octet-stream',
			disposition: `${inline ? 'inline' : 'attachment'}; ${dispositionName(file.name)}`,
		})
			.header('content-length', String(range ? range.end - range.start + 1 : size))
			.header('accept-ranges', 'bytes');
		if (range) reply.header('content-range', `bytes ${range.start}-${range.end}/${size}`);
		return reply.send(stream);
	};
}

/**
 * An image's thumbnail (a WebP made when its upload finished, server/files/images.ts), to the members of its
 * room only, as the file itself; whole (a few dozen kilobytes), never a range.
 */
function serveThumb({ db, tokens, files }: HttpDeps) {
	return async (request: FileRequest, reply: FastifyReply) => {
		const file = await memberFile(request, { db, tokens });
		if (!file.thumbSha256) throw new AppError('not_found', 'file has no thumbnail');
		const stream = await openBlob(files.blobs, file.thumbSha256);
		const name = `${file.name.replace(/\.[^.]*$/, '')}.webp`;
		return storedFileHeaders(reply.code(200), {
			type: 'image/webp',
			disposition: `inline; ${dispositionName(name)}`,
		}).send(stream);
	};
}

/** The file `:id` when the user is a member of its room and it is stored; throws the one 404 otherwise. */
async function memberFile(
	request: FileRequest,
	{ db, tokens }: Pick<HttpDeps, 'db' | 'tokens'>,
): Promise<attachments.AttachmentRow & { sha256: string }> {
	const user = await requireUser(request, tokens);
	const id = request.params.id;
	const file = uploadId.safeParse(id).success ? await attachments.get(db, id) : null;
	// Not a member (any more), or no such file, or not all in yet: the same answer, which tells nothing.
	if (!file?.sha256 || !(await rooms.roleOf(db, file.roomId, user.userId))) throw notFound('file');
	return { ...file, sha256: file.sha256 };
}

/** A stored blob's bytes; a blob gone from the store is the same 404 as a file that never was. */
async function openBlob(
	blobs: BlobStore,
	hash: string,
	range?: { start: number; end: number },
): Promise<Readable> {
	try {
		return await blobs.read(hash, range);
	} catch (error) {
		if (error instanceof BlobNotFound) throw notFound('file');
		throw error;
	}
}

/**
 * What every stored file and thumbnail is served with: its type (never sniffed), how to show it, a sandbox should a
 * browser open it as a page anyway, and a private cache for good (a file's bytes never change under its id).
 */
function storedFileHeaders(
	reply: FastifyReply,
	{ type, disposition }: { type: string; disposition: string },
) {
	return reply
		.header('content-type', type)
		.header('x-content-type-options', 'nosniff')
		.header('content-security-policy', "default-src 'none'; sandbox")
		.header('cache-control', 'private, max-age=31536000, immutable')
		.header('content-disposition', disposition);
}

/** `Range: bytes=a-b` (one range; `a-` and `-n` too) within `size` bytes; null for the whole file. */
function parseRange(
	header: string | undefined,
	size: number,
): { start: number; end: number } | null | 'unsatisfiable' {
	if (!header) return null;
	const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
	if (!match || (match[1] === '' && match[2] === '')) return null; // not a form we serve: the whole file
	let start: number;
	let end: number;
	if (match[1] === '') {
		start = Math.max(0, size - Number(match[2]));
		end = size - 1;
	} else {
		start = Number(match[1]);
		end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
	}
	if (size === 0 || start >= size || start > end) return 'unsatisfiable';
	return { start, end };
}

/** The file's name for `Content-Disposition`: an ASCII fallback and the exact name (RFC 6266, RFC 8187). */
function dispositionName(name: string): string {
	const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
	return `filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

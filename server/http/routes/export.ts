import { Readable } from 'node:stream';
import { SpanStatusCode, type Span } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import { exportQuery, moderates } from '#protocol/api.ts';
import { forbidden } from '../../errors.ts';
import { exportRoom } from '../../export/stream.ts';
import { tracer } from '../../tracing.ts';
import { parse, requireUser } from '../auth.ts';
import type { HttpDeps } from '../deps.ts';
import { roomParams } from './rooms.ts';

/** A room's history as JSONL or CSV, streamed (docs/operations.md). */
export function exportRoutes(app: FastifyInstance, deps: HttpDeps) {
	const { db, tokens } = deps;

	app.get('/api/rooms/:id/export', async (request, reply) => {
		const user = await requireUser(request, tokens);
		const { id } = parse(roomParams, request.params, 'room id');
		const q = parse(exportQuery, request.query, 'query');
		const { room, role } = await deps.rooms.getFor(user.userId, id);
		if (q.includeDeleted && !moderates(role, room.isGroup)) {
			throw forbidden('only an owner or admin of a group room may export deleted messages');
		}
		const type =
			q.format === 'csv' ? 'text/csv; charset=utf-8; header=present' : 'application/x-ndjson; charset=utf-8';
		request.log.info(
			{ roomId: id, format: q.format, includeDeleted: Boolean(q.includeDeleted) },
			'export started',
		);
		const span = tracer.startSpan('chat.export', {
			attributes: { 'chat.room_id': id, 'chat.export.format': q.format },
		});
		return reply
			.header('content-type', type)
			.header('content-disposition', `attachment; filename="room-${id}.${q.format}"`)
			.header('cache-control', 'no-store')
			.send(
				Readable.from(
					traced(
						exportRoom(db, {
							roomId: id,
							format: q.format,
							since: q.since,
							until: q.until,
							includeDeleted: q.includeDeleted,
						}),
						span,
					),
				),
			);
	});
}

/** Passes an export's chunks through, and ends its span when the stream ends (or fails, or the client leaves). */
async function* traced<T>(source: AsyncIterable<T>, span: Span): AsyncGenerator<T> {
	let chunks = 0;
	try {
		for await (const chunk of source) {
			chunks++;
			yield chunk;
		}
	} catch (error) {
		span.recordException(error instanceof Error ? error : String(error));
		span.setStatus({ code: SpanStatusCode.ERROR });
		throw error;
	} finally {
		span.setAttribute('chat.export.chunks', chunks);
		span.end();
	}
}

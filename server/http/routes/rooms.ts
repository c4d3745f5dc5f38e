import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import {
	addMemberBody,
	changeRoleBody,
	createRoomBody,
	exportQuery,
	messagesQuery,
	moderates,
	searchQuery,
	usersQuery,
} from '#protocol/api.ts';
import { uuid } from '#protocol/ids.ts';
import { notifySettingsBody } from '#protocol/user-channel.ts';
import * as messages from '../../data/messages.ts';
import * as rooms from '../../data/rooms.ts';
import * as users from '../../data/users.ts';
import { exportRoom } from '../../export/stream.ts';
import { forbidden } from '../../errors.ts';
import { parse, requireUser } from '../auth.ts';
import type { HttpDeps } from '../deps.ts';
import { SpanStatusCode, type Span } from '@opentelemetry/api';
import { tracer } from '../../tracing.ts';

const roomParams = z.strictObject({ id: uuid });
const memberParams = z.strictObject({ id: uuid, userId: uuid });

export function roomRoutes(app: FastifyInstance, deps: HttpDeps) {
	const { db, tokens } = deps;

	app.get('/api/users', async (request) => {
		await requireUser(request, tokens);
		const { q } = parse(usersQuery, request.query, 'query');
		return { items: await users.search(db, q) };
	});

	app.post('/api/rooms', async (request, reply) => {
		const user = await requireUser(request, tokens);
		const body = parse(createRoomBody, request.body);
		const { room, created } = await deps.rooms.create(user.userId, body);
		return reply.code(created ? 201 : 200).send(room);
	});

	app.get('/api/rooms', async (request) => {
		const user = await requireUser(request, tokens);
		return { items: await rooms.listFor(db, user.userId) };
	});

	app.get('/api/rooms/:id', async (request) => {
		const user = await requireUser(request, tokens);
		const { id } = parse(roomParams, request.params, 'room id');
		return (await deps.rooms.getFor(user.userId, id)).room;
	});

	app.post('/api/rooms/:id/members', async (request, reply) => {
		const user = await requireUser(request, tokens);
		const { id } = parse(roomParams, request.params, 'room id');
		const body = parse(addMemberBody, request.body);
		return reply.code(201).send(await deps.rooms.addMember(user.userId, id, body.userId, body.role));
	});

	app.delete('/api/rooms/:id/members/:userId', async (request, reply) => {
		const user = await requireUser(request, tokens);
		const { id, userId } = parse(memberParams, request.params, 'path');
		await deps.rooms.removeMember(user.userId, id, userId);
		return reply.code(204).send();
	});

	app.patch('/api/rooms/:id/members/:userId', async (request) => {
		const user = await requireUser(request, tokens);
		const { id, userId } = parse(memberParams, request.params, 'path');
		const body = parse(changeRoleBody, request.body);
		return deps.rooms.changeRole(user.userId, id, userId, body.role);
	});

	app.put('/api/rooms/:id/notifications', async (request, reply) => {
		const user = await requireUser(request, tokens);
		const { id } = parse(roomParams, request.params, 'room id');
		const body = parse(notifySettingsBody, request.body);
		await deps.rooms.setNotify(user.userId, id, body.level);
		return reply.code(204).send();
	});

	app.get('/api/rooms/:id/messages', async (request) => {
		const user = await requireUser(request, tokens);
		const { id } = parse(roomParams, request.params, 'room id');
		const q = parse(messagesQuery, request.query, 'query');
		await deps.rooms.getFor(user.userId, id);
		return messages.page(db, id, q.before, q.limit);
	});

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

	app.get('/api/search', async (request) => {
		const user = await requireUser(request, tokens);
		const q = parse(searchQuery, request.query, 'query');
		return {
			items: await messages.search(db, { userId: user.userId, query: q.q, roomId: q.roomId, limit: 50 }),
		};
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

import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import {
	addMemberBody,
	changeRoleBody,
	createRoomBody,
	messagesQuery,
	updateRoomBody,
} from '#protocol/api.ts';
import { uuid } from '#protocol/ids.ts';
import { notifySettingsBody } from '#protocol/user-channel.ts';
import * as messages from '../../data/messages.ts';
import * as rooms from '../../data/rooms.ts';
import { parse, requireUser } from '../auth.ts';
import type { HttpDeps } from '../deps.ts';

export const roomParams = z.strictObject({ id: uuid });
const memberParams = z.strictObject({ id: uuid, userId: uuid });

/** Rooms, their members, how each notifies, and their history page by page. */
export function roomRoutes(app: FastifyInstance, deps: HttpDeps) {
	const { db, tokens } = deps;

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

	app.patch('/api/rooms/:id', async (request) => {
		const user = await requireUser(request, tokens);
		const { id } = parse(roomParams, request.params, 'room id');
		const body = parse(updateRoomBody, request.body);
		return deps.rooms.updateDetails(user.userId, id, body);
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
}

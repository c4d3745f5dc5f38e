import type { FastifyInstance } from 'fastify';
import { usersQuery } from '#protocol/api.ts';
import { limits } from '#protocol/limits.ts';
import * as users from '../../data/users.ts';
import { parse, requireUser } from '../auth.ts';
import type { HttpDeps } from '../deps.ts';

/** Finding people to start a chat with, by name. */
export function userRoutes(app: FastifyInstance, { db, tokens }: HttpDeps) {
	app.get('/api/users', async (request) => {
		await requireUser(request, tokens);
		const { q } = parse(usersQuery, request.query, 'query');
		return { items: await users.search(db, q, limits.userSearchResults) };
	});
}

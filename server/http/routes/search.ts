import type { FastifyInstance } from 'fastify';
import { searchQuery } from '#protocol/api.ts';
import { limits } from '#protocol/limits.ts';
import * as messages from '../../data/messages.ts';
import { parse, requireUser } from '../auth.ts';
import type { HttpDeps } from '../deps.ts';

/** Full-text search over the messages of the rooms the user is a member of. */
export function searchRoutes(app: FastifyInstance, { db, tokens }: HttpDeps) {
	app.get('/api/search', async (request) => {
		const user = await requireUser(request, tokens);
		const q = parse(searchQuery, request.query, 'query');
		return {
			items: await messages.search(db, {
				userId: user.userId,
				query: q.q,
				roomId: q.roomId,
				limit: limits.searchResults,
			}),
		};
	});
}

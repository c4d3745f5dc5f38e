import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { deleteAccountBody, sessionParams } from '#protocol/api.ts';
import { exportAccount } from '../../export/account.ts';
import { parse, requireUser, setRefreshCookie } from '../auth.ts';
import type { HttpDeps } from '../deps.ts';
import { authOptions } from './auth.ts';

/** The signed-in account's own controls: deleting it, its sessions, and its data as a file. */
export function meRoutes(app: FastifyInstance, deps: HttpDeps) {
	const { cookie, rateLimit } = authOptions(deps);

	app.delete('/api/me', { config: rateLimit }, async (request, reply) => {
		const claims = await requireUser(request, deps.tokens);
		const body = parse(deleteAccountBody, request.body);
		await deps.auth.deleteAccount(claims.userId, body.password);
		setRefreshCookie(reply, null, cookie);
		request.log.info({ userId: claims.userId }, 'account deleted');
		return reply.code(204).send();
	});

	app.get('/api/me/sessions', async (request) => {
		const claims = await requireUser(request, deps.tokens);
		return { items: await deps.auth.listSessions(claims.userId, claims.sessionId) };
	});

	app.delete('/api/me/sessions/:id', async (request) => {
		const claims = await requireUser(request, deps.tokens);
		const { id } = parse(sessionParams, request.params, 'session id');
		const ended = await deps.auth.endSessions(claims.userId, claims.sessionId, id);
		request.log.info({ userId: claims.userId, ended }, 'sessions ended by their user');
		return { ended };
	});

	app.get('/api/me/export', async (request, reply) => {
		const claims = await requireUser(request, deps.tokens);
		request.log.info({ userId: claims.userId }, 'account export started');
		return reply
			.header('content-type', 'application/x-ndjson; charset=utf-8')
			.header('content-disposition', `attachment; filename="chat-${claims.name}-data.jsonl"`)
			.header('cache-control', 'no-store')
			.send(Readable.from(exportAccount(deps.db, claims.userId)));
	});
}

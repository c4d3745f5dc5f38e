import type { FastifyInstance } from 'fastify';
import { pushSubscriptionBodyFor, pushUnsubscribeBody } from '#protocol/user-channel.ts';
import { parse, requireUser } from '../auth.ts';
import type { HttpDeps } from '../deps.ts';

/**
 * Web Push subscriptions (docs/protocol.md, "Web Push"). Outside production an endpoint may also be plain http
 * to a loopback host: the tests run their own push service there. In production only https endpoints are taken.
 */
export function pushRoutes(app: FastifyInstance, deps: HttpDeps) {
	const { tokens, push } = deps;
	const subscriptionBody = pushSubscriptionBodyFor({
		allowLoopbackHttp: deps.config.NODE_ENV !== 'production',
	});

	app.get('/api/push/key', async (request) => {
		await requireUser(request, tokens);
		return { publicKey: push.publicKey() };
	});

	app.post('/api/push/subscriptions', async (request, reply) => {
		const user = await requireUser(request, tokens);
		const body = parse(subscriptionBody, request.body);
		await push.subscribe(user.userId, body);
		return reply.code(201).send({ endpoint: body.endpoint, previews: body.previews });
	});

	// Idempotent, and the same 204 whether or not the endpoint was the caller's: it reveals nothing about others.
	app.delete('/api/push/subscriptions', async (request, reply) => {
		const user = await requireUser(request, tokens);
		const { endpoint } = parse(pushUnsubscribeBody, request.body);
		await push.unsubscribe(user.userId, endpoint);
		return reply.code(204).send();
	});
}

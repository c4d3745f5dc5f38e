import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors.ts';
import type { HttpDeps } from '../deps.ts';

/** How long /readyz waits for each dependency: under the 3 s of the compose file's health check. */
const READY_CHECK_MS = 2_000;

const withTimeout = <T>(promise: Promise<T>, ms: number) =>
	Promise.race([
		promise,
		new Promise<never>((_, reject) =>
			setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref(),
		),
	]);

/**
 * /healthz: the process is up. /readyz: 200 `ready` when the database (and Redis, when configured) answer;
 * 200 `degraded` when only Redis is away (the node still serves its own clients and stores everything, only
 * cross-node relay waits); 503 `unavailable` when the database is away (nothing can be acknowledged).
 */
export function healthRoutes(app: FastifyInstance, deps: HttpDeps) {
	app.get('/healthz', async () => ({ status: 'ok' }));

	/** Prometheus metrics (docs/operations.md says what each means); behind a bearer token when METRICS_TOKEN is set. */
	app.get('/metrics', async (request, reply) => {
		const expected = deps.config.METRICS_TOKEN;
		if (expected) {
			const given = Buffer.from(/^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1] ?? '');
			const want = Buffer.from(expected);
			if (given.length !== want.length || !timingSafeEqual(given, want))
				throw new AppError('unauthorized', 'metrics need `Authorization: Bearer <METRICS_TOKEN>`');
		}
		return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
	});

	app.get('/readyz', async (_request, reply) => {
		const checks: Record<string, { ok: boolean; error?: string }> = {};
		const check = async (name: string, fn: () => Promise<void>) => {
			try {
				await withTimeout(fn(), READY_CHECK_MS);
				checks[name] = { ok: true };
			} catch (error) {
				checks[name] = { ok: false, error: (error as Error).message };
			}
		};
		await Promise.all([
			check('database', () => deps.db.ping()),
			...(deps.redisReady ? [check('redis', deps.redisReady)] : []),
		]);
		const status = !checks.database?.ok ? 'unavailable' : checks.redis?.ok === false ? 'degraded' : 'ready';
		return reply.code(status === 'unavailable' ? 503 : 200).send({ status, database: deps.db.kind, checks });
	});
}

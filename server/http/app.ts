import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import Fastify, {
	type FastifyBaseLogger,
	type FastifyError,
	type FastifyInstance,
	type FastifyReply,
	type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import type { ApiErrorBody } from '#protocol/errors.ts';
import { limits } from '#protocol/limits.ts';
import { AppError } from '../errors.ts';
import { context, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { tracer } from '../tracing.ts';
import type { HttpDeps } from './deps.ts';
import { authRoutes } from './routes/auth.ts';
import { meRoutes } from './routes/me.ts';
import { healthRoutes } from './routes/health.ts';
import { pushRoutes } from './routes/push.ts';
import { securityHeaders } from './security-headers.ts';
import { roomRoutes } from './routes/rooms.ts';
import { configRoutes } from './routes/config.ts';
import { exportRoutes } from './routes/export.ts';
import { searchRoutes } from './routes/search.ts';
import { fileRoutes } from './routes/files.ts';
import { userRoutes } from './routes/users.ts';

const fastifyErrorCodes: Record<string, AppError['code']> = {
	FST_ERR_CTP_INVALID_JSON_BODY: 'bad_request',
	FST_ERR_CTP_EMPTY_JSON_BODY: 'bad_request',
	FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
	FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
	FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
};

const DB_DOWN = new Set([
	'ECONNREFUSED',
	'ECONNRESET',
	'ETIMEDOUT',
	'57P01',
	'57P03',
	'08006',
	'08001',
	'08003',
]);

function toBody(error: AppError): ApiErrorBody {
	return {
		error: { code: error.code, message: error.message, ...(error.issues ? { issues: error.issues } : {}) },
	};
}

/** One route the HTTP server answers: a method and a pattern, e.g. `GET /api/rooms/:id`. */
export interface HttpRoute {
	method: string;
	url: string;
}

/**
 * The JSON API, health endpoints and the built SPA on one Fastify instance. `onRoute` hears of every route as it
 * is registered (the tests walk them all).
 */
export async function buildHttp(
	deps: HttpDeps,
	log: Logger,
	onRoute?: (route: HttpRoute) => void,
): Promise<FastifyInstance> {
	const handleError = errorHandler(deps);
	const app = Fastify({
		loggerInstance: log as FastifyBaseLogger,
		genReqId: () => randomUUID(),
		bodyLimit: limits.httpBodyBytesMax,
		// The same proxies as the WebSocket upgrades trust (client-address.ts); none: the socket's peer.
		trustProxy: deps.config.TRUST_PROXY.length > 0 ? [...deps.config.TRUST_PROXY] : false,
		// What fails before any route runs (a path that does not decode, an overlong path parameter) gets the
		// API's error shape too, not Fastify's own.
		frameworkErrors: handleError,
	});
	if (onRoute) {
		app.addHook('onRoute', (route) => {
			for (const method of [route.method].flat()) onRoute({ method, url: route.url });
		});
	}

	await app.register(fastifyRateLimit, {
		global: false,
		errorResponseBuilder: (_request, context) => {
			const error = new AppError(
				'rate_limited',
				`too many requests; try again in ${Math.ceil(context.ttl / 1000)} s`,
			);
			return Object.assign(error, { statusCode: 429 });
		},
	});

	traceRequests(app, deps);
	app.setErrorHandler(handleError);

	// `build` is a symlink that a new build switches (scripts/build.ts): this server keeps the build it started
	// with, whole, until it restarts, instead of mixing two builds' files.
	const staticDir = fs.existsSync(deps.config.STATIC_DIR)
		? fs.realpathSync(deps.config.STATIC_DIR)
		: deps.config.STATIC_DIR;
	securityHeaders(app, staticDir);
	healthRoutes(app, deps);
	authRoutes(app, deps);
	meRoutes(app, deps);
	configRoutes(app, deps);
	roomRoutes(app, deps);
	exportRoutes(app, deps);
	userRoutes(app, deps);
	searchRoutes(app, deps);
	pushRoutes(app, deps);
	fileRoutes(app, deps);

	await serveClient(app, staticDir, log);
	return app;
}

/** Every error as the API's `{ error: { code, message } }`, with the status it maps to. */
function errorHandler(deps: HttpDeps) {
	return (error: FastifyError | AppError, request: FastifyRequest, reply: FastifyReply) => {
		if (error instanceof AppError) {
			if (error.authFailure) deps.metrics.authFailures.inc({ channel: 'http', reason: error.authFailure });
			else if (error.code === 'rate_limited' && request.routeOptions.url?.startsWith('/api/auth/'))
				deps.metrics.authFailures.inc({ channel: 'http', reason: 'rate_limited' });
			if (error.code === 'rate_limited')
				request.log.warn({ route: request.routeOptions.url }, 'rate limited');
			return reply.code(error.status).send(toBody(error));
		}
		const code = 'code' in error && typeof error.code === 'string' ? error.code : undefined;
		const mapped = code ? fastifyErrorCodes[code] : undefined;
		if (mapped)
			return reply.code(new AppError(mapped, '').status).send(toBody(new AppError(mapped, error.message)));
		if (code && DB_DOWN.has(code)) {
			request.log.error({ err: error }, 'database unavailable');
			return reply
				.code(503)
				.send(toBody(new AppError('unavailable', 'the database is unavailable; try again shortly')));
		}
		if ('statusCode' in error && typeof error.statusCode === 'number' && error.statusCode < 500) {
			return reply.code(error.statusCode).send(toBody(new AppError('bad_request', error.message)));
		}
		request.log.error({ err: error }, 'request failed');
		return reply.code(500).send(toBody(new AppError('internal', 'something went wrong on the server')));
	};
}

/** A span and the HTTP metrics for every request, by route pattern. */
function traceRequests(app: FastifyInstance, deps: HttpDeps): void {
	// One span per request. It is made the active context again right before the handler runs: a request body
	// is read from socket events, which would lose a context set only when the request arrived.
	const spans = new WeakMap<object, Span>();
	app.addHook('onRequest', (request, _reply, done) => {
		const route = request.routeOptions.url ?? 'unmatched';
		const span = tracer.startSpan(`${request.method} ${route}`, {
			kind: SpanKind.SERVER,
			attributes: {
				'http.request.method': request.method,
				'http.route': route,
				'chat.request_id': request.id,
			},
		});
		spans.set(request, span);
		context.with(trace.setSpan(context.active(), span), done);
	});
	app.addHook('preHandler', (request, _reply, done) => {
		const span = spans.get(request);
		if (span) context.with(trace.setSpan(context.active(), span), done);
		else done();
	});
	// Route patterns, never paths: `/api/rooms/:id`, not one series per room.
	app.addHook('onResponse', async (request, reply) => {
		const route = request.routeOptions.url ?? 'unmatched';
		deps.metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
		deps.metrics.httpSeconds.observe({ method: request.method, route }, reply.elapsedTime / 1_000);
		const span = spans.get(request);
		if (span) {
			span.setAttribute('http.response.status_code', reply.statusCode);
			if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
			span.end();
		}
	});
}

/**
 * The built client: its files as they are, and index.html for every page route (the SPA routes itself); any other
 * unknown path is the API's 404.
 */
async function serveClient(app: FastifyInstance, staticDir: string, log: Logger): Promise<void> {
	const indexHtml = path.join(staticDir, 'index.html');
	const hasClient = fs.existsSync(indexHtml);
	if (hasClient) {
		log.info({ staticDir }, 'serving the client');
		await app.register(fastifyStatic, {
			root: staticDir,
			wildcard: false,
			index: false,
			setHeaders(res, filePath) {
				const immutable = filePath.includes(`${path.sep}_app${path.sep}immutable${path.sep}`);
				res.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
			},
		});
	} else {
		log.warn({ staticDir }, 'no built client found; run `npm run build` to serve the app');
	}

	app.setNotFoundHandler((request, reply) => {
		const url = request.url.split('?')[0] ?? '/';
		const lastSegment = url.slice(url.lastIndexOf('/') + 1);
		// Only page routes fall back to the app. A missing asset (a file name, or anything under /_app/)
		// is a 404: answering it with index.html would let a service worker cache HTML as a script.
		const isPage =
			(request.method === 'GET' || request.method === 'HEAD') &&
			!url.startsWith('/api/') &&
			!url.startsWith('/_app/') &&
			!lastSegment.includes('.');
		if (!isPage || !hasClient) {
			return reply.code(404).send(toBody(new AppError('not_found', `no route for ${request.method} ${url}`)));
		}
		return reply.header('cache-control', 'no-cache').sendFile('index.html');
	});
}

import type { FastifyInstance } from 'fastify';
import { changePasswordBody, credentialsBody, loginBody, refreshBody } from '#protocol/api.ts';
import { deviceLabel } from '../../auth/device.ts';
import { AppError, authFailed } from '../../errors.ts';
import * as users from '../../data/users.ts';
import { parse, readCookie, REFRESH_COOKIE, requireUser, setRefreshCookie } from '../auth.ts';
import type { HttpDeps } from '../deps.ts';

/** The refresh cookie's settings, and the rate limit of the routes that take a password. */
export function authOptions(deps: HttpDeps) {
	return {
		cookie: { secure: deps.config.NODE_ENV === 'production', maxAgeDays: deps.config.REFRESH_TOKEN_TTL_DAYS },
		rateLimit: { rateLimit: { max: deps.config.AUTH_RATE_LIMIT_PER_MINUTE, timeWindow: '1 minute' } },
	};
}

export function authRoutes(app: FastifyInstance, deps: HttpDeps) {
	const { cookie, rateLimit } = authOptions(deps);

	const refreshTokenOf = (request: Parameters<typeof readCookie>[0]) => {
		const body = parse(refreshBody, request.body);
		const token = body.refreshToken ?? readCookie(request, REFRESH_COOKIE);
		if (!token) throw authFailed('missing_token', 'unauthorized', 'no refresh token: sign in again');
		return token;
	};

	app.post('/api/auth/register', { config: rateLimit }, async (request, reply) => {
		const { name, password } = parse(credentialsBody, request.body);
		const result = await deps.auth.register(name, password, deviceLabel(request.headers['user-agent']));
		setRefreshCookie(reply, result.refreshToken, cookie);
		request.log.info({ userId: result.user.id }, 'user registered');
		return reply.code(201).send(result);
	});

	app.post('/api/auth/login', { config: rateLimit }, async (request, reply) => {
		const { name, password } = parse(loginBody, request.body);
		try {
			const result = await deps.auth.login(name, password, deviceLabel(request.headers['user-agent']));
			setRefreshCookie(reply, result.refreshToken, cookie);
			return result;
		} catch (error) {
			if (error instanceof AppError && error.code === 'invalid_credentials') request.log.info('login failed');
			throw error;
		}
	});

	app.post('/api/auth/refresh', { config: rateLimit }, async (request, reply) => {
		try {
			const result = await deps.auth.refresh(refreshTokenOf(request));
			setRefreshCookie(reply, result.refreshToken, cookie);
			return result;
		} catch (error) {
			if (error instanceof AppError && error.code === 'unauthorized') setRefreshCookie(reply, null, cookie);
			throw error;
		}
	});

	app.post('/api/auth/logout', async (request, reply) => {
		const token = parse(refreshBody, request.body).refreshToken ?? readCookie(request, REFRESH_COOKIE);
		if (token) await deps.auth.logout(token);
		setRefreshCookie(reply, null, cookie);
		return reply.code(204).send();
	});

	app.post('/api/auth/password', { config: rateLimit }, async (request, reply) => {
		const claims = await requireUser(request, deps.tokens);
		const body = parse(changePasswordBody, request.body);
		await deps.auth.changePassword(claims.userId, claims.sessionId, body.currentPassword, body.newPassword);
		request.log.info({ userId: claims.userId }, 'password changed; other sessions ended');
		return reply.code(204).send();
	});

	app.get('/api/me', async (request) => {
		const claims = await requireUser(request, deps.tokens);
		const user = await users.findById(deps.db, claims.userId);
		if (!user) throw authFailed('account_gone', 'unauthorized', 'account no longer exists');
		return user;
	});
}

import { z } from '../protocol/zod.ts';
import type { ApiErrorCode } from '../protocol/errors.ts';
import { apiErrorCodes } from '../protocol/errors.ts';
import { pushKeyResponse, type PushSubscriptionBody } from '../protocol/user-channel.ts';
import { sessionList, type Role } from '../protocol/api.ts';
import type { NotifyLevel } from '../protocol/user-channel.ts';
import * as clock from './clock.ts';
import * as schemas from './schemas.ts';

/** Codes of the JSON API plus the two the client adds: no answer at all, and an answer of the wrong shape. */
export type ClientErrorCode = ApiErrorCode | 'network' | 'invalid_response';

/** Any failed API call. `status` is 0 when the server could not be reached. */
export class ApiError extends Error {
	readonly status: number;
	readonly code: ClientErrorCode;
	readonly issues: { path: string; message: string }[];

	constructor(status: number, code: ClientErrorCode, message: string, issues: ApiError['issues'] = []) {
		super(message);
		this.name = 'ApiError';
		this.status = status;
		this.code = code;
		this.issues = issues;
	}

	/** The request never got an answer (offline, server down): worth retrying later, not a verdict. */
	get isNetwork(): boolean {
		return this.status === 0;
	}
}

const errorBody = z.object({
	error: z.object({
		code: z.string(),
		message: z.string(),
		issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
	}),
});

/**
 * Where authenticated calls get their access token. The session installs it; keeping it injectable avoids an
 * import cycle and lets a 401 trigger exactly one forced refresh before the call is retried.
 */
interface TokenSource {
	token(): Promise<string>;
	/** Called after a 401: refreshes, or signs out when the session is gone. */
	refreshAfterUnauthorized(): Promise<string>;
}
let tokens: TokenSource | null = null;

export function setTokenSource(source: TokenSource | null): void {
	tokens = source;
}

interface RequestOptions<S extends z.ZodType> {
	method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
	body?: unknown;
	/** Validates the answer; omit for answers without a body the client reads. */
	schema?: S;
	/** Send the access token (default true). */
	auth?: boolean;
	signal?: AbortSignal;
}

/** One JSON API call: typed, validated, with API errors raised as `ApiError`. */
export async function request<S extends z.ZodType>(
	path: string,
	options: RequestOptions<S> = {},
): Promise<z.infer<S>> {
	const response =
		options.auth === false ? await send(path, options, null) : await sendAuthorized(path, options);
	return read(response, options.schema);
}

/**
 * Sends with the access token. A 401 about the token is retried once with a fresh one; a wrong password (a
 * re-authenticated action such as changing it) is an answer, and sending it again would count as a second failed
 * attempt.
 */
async function sendAuthorized(path: string, options: RequestOptions<z.ZodType>): Promise<Response> {
	const response = await send(path, options, await requireTokens().token());
	if (response.status !== 401 || (await isWrongCredentials(response))) return response;
	return send(path, options, await requireTokens().refreshAfterUnauthorized());
}

async function isWrongCredentials(response: Response): Promise<boolean> {
	const json: unknown = await response
		.clone()
		.json()
		.catch(() => null);
	const parsed = errorBody.safeParse(json);
	return parsed.success && parsed.data.error.code === 'invalid_credentials';
}

function requireTokens(): TokenSource {
	if (!tokens) throw new ApiError(401, 'unauthorized', 'not signed in');
	return tokens;
}

async function send(path: string, options: RequestOptions<z.ZodType>, token: string | null) {
	const headers: Record<string, string> = { accept: 'application/json' };
	if (options.body !== undefined) headers['content-type'] = 'application/json';
	if (token) headers.authorization = `Bearer ${token}`;
	const sentAt = Date.now();
	let response: Response;
	try {
		response = await fetch(path, {
			method: options.method ?? 'GET',
			headers,
			body: options.body === undefined ? undefined : JSON.stringify(options.body),
			credentials: 'same-origin',
			cache: 'no-store',
			signal: options.signal,
		});
	} catch (error) {
		if (error instanceof DOMException && error.name === 'AbortError') throw error;
		throw new ApiError(0, 'network', 'The server cannot be reached.');
	}
	clock.observe(response.headers.get('date'), sentAt, Date.now());
	return response;
}

async function read<S extends z.ZodType>(response: Response, schema: S | undefined): Promise<z.infer<S>> {
	const text = await response.text().catch(() => '');
	let json: unknown = undefined;
	if (text) {
		try {
			json = JSON.parse(text);
		} catch {
			// Not JSON (a proxy's error page, the SPA fallback): handled below by status and schema.
		}
	}
	if (!response.ok) {
		const parsed = errorBody.safeParse(json);
		if (!parsed.success) {
			throw new ApiError(
				response.status,
				response.status >= 500 ? 'internal' : 'bad_request',
				`HTTP ${response.status}`,
			);
		}
		const { code, message, issues } = parsed.data.error;
		const known = (apiErrorCodes as readonly string[]).includes(code)
			? (code as ApiErrorCode)
			: 'bad_request';
		throw new ApiError(response.status, known, message, issues);
	}
	if (!schema) return undefined as z.infer<S>;
	const parsed = schema.safeParse(json);
	if (!parsed.success) {
		console.warn('unexpected API answer', response.url, parsed.error.issues);
		throw new ApiError(response.status, 'invalid_response', 'The server answered in an unexpected form.');
	}
	return parsed.data;
}

/** The endpoints the client uses, as verbs. */
export const authApi = {
	register: (name: string, password: string) =>
		request('/api/auth/register', {
			method: 'POST',
			body: { name, password },
			schema: schemas.authResponse,
			auth: false,
		}),
	login: (name: string, password: string) =>
		request('/api/auth/login', {
			method: 'POST',
			body: { name, password },
			schema: schemas.authResponse,
			auth: false,
		}),
	/** Uses the httpOnly cookie: this tab never holds a refresh token of its own. */
	refresh: () =>
		request('/api/auth/refresh', { method: 'POST', body: {}, schema: schemas.authResponse, auth: false }),
	logout: () => request('/api/auth/logout', { method: 'POST', body: {}, auth: false }),
};

export const accountApi = {
	/** Ends every other session of the account; this one stays signed in. */
	changePassword: (currentPassword: string, newPassword: string) =>
		request('/api/auth/password', { method: 'POST', body: { currentPassword, newPassword } }),
	deleteAccount: (password: string) => request('/api/me', { method: 'DELETE', body: { password } }),
	sessions: () => request('/api/me/sessions', { schema: sessionList }).then((r) => r.items),
	/** Ends one session by its id, or `others`: every session but this one. */
	endSessions: (id: string) => request(`/api/me/sessions/${id}`, { method: 'DELETE' }),
};

/** A GET read as a stream (a download): the answer itself once it is a 2xx; an error answer throws as `request`'s. */
export async function download(path: string, signal?: AbortSignal): Promise<Response> {
	const response = await sendAuthorized(path, { signal });
	if (!response.ok || !response.body) await read(response, undefined);
	return response;
}

export const usersApi = {
	search: (q: string, signal?: AbortSignal) =>
		request(`/api/users?q=${encodeURIComponent(q)}`, { schema: schemas.userList, signal }).then(
			(r) => r.items,
		),
};

export const searchApi = {
	/** Server-side full-text search over the caller's rooms; snippets mark hits with <mark>…</mark> (text, not HTML). */
	search: (q: string, signal?: AbortSignal) =>
		request(`/api/search?q=${encodeURIComponent(q)}`, { schema: schemas.searchResults, signal }).then(
			(r) => r.items,
		),
};

export const roomsApi = {
	list: () => request('/api/rooms', { schema: schemas.roomList }).then((r) => r.items),
	get: (id: string) => request(`/api/rooms/${id}`, { schema: schemas.room }),
	create: (body: { name?: string; isGroup: boolean; memberIds: string[] }) =>
		request('/api/rooms', { method: 'POST', body, schema: schemas.room }),
	addMember: (roomId: string, userId: string) =>
		request(`/api/rooms/${roomId}/members`, { method: 'POST', body: { userId }, schema: schemas.room }),
	/** Removes a member, or leaves the room when `userId` is the caller. */
	removeMember: (roomId: string, userId: string) =>
		request(`/api/rooms/${roomId}/members/${userId}`, { method: 'DELETE' }),
	setRole: (roomId: string, userId: string, role: Role) =>
		request(`/api/rooms/${roomId}/members/${userId}`, {
			method: 'PATCH',
			body: { role },
			schema: schemas.room,
		}),
	update: (roomId: string, body: { name?: string; topic?: string }) =>
		request(`/api/rooms/${roomId}`, { method: 'PATCH', body, schema: schemas.room }),
	/** When this room tells the caller about new messages; every device hears of it through the user channel. */
	setNotify: (roomId: string, level: NotifyLevel) =>
		request(`/api/rooms/${roomId}/notifications`, { method: 'PUT', body: { level } }),
	messages: (roomId: string, before?: number, limit = 50) =>
		request(`/api/rooms/${roomId}/messages?limit=${limit}${before ? `&before=${before}` : ''}`, {
			schema: schemas.messagePage,
		}),
};

export const pushApi = {
	/** The server's VAPID public key, for `pushManager.subscribe({ applicationServerKey })`. */
	key: () => request('/api/push/key', { schema: pushKeyResponse }).then((r) => r.publicKey),
	subscribe: (body: PushSubscriptionBody) => request('/api/push/subscriptions', { method: 'POST', body }),
	unsubscribe: (endpoint: string) =>
		request('/api/push/subscriptions', { method: 'DELETE', body: { endpoint } }),
};

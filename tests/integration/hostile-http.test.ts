/**
 * Issue 15: every HTTP input is validated before it reaches SQL. This walks every route the server registers
 * (read from the running app, so a route added later is walked too) as a signed-in user and as nobody, with
 * hostile values in each path parameter, in each query parameter the routes read, in each field of the JSON
 * bodies, and as whole bodies of the wrong shape. No answer may be a 5xx, every error must have the API's shape
 * (`{ error: { code, message } }`), nothing may fail after the headers went out (a streamed export), and the
 * server must still serve afterwards.
 *
 * Only one field is hostile at a time, the others stay valid: a hostile value then gets as far as the route lets
 * it, not just to the first failing field. The server runs in this test's process: had a request crashed it, the
 * run itself would fail.
 */
import { createECDH, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import * as messages from '../../server/data/messages.ts';
import { exportQuery, messagesQuery, searchQuery, usersQuery } from '../../src/lib/protocol/api.ts';
import { apiErrorCodes } from '../../src/lib/protocol/errors.ts';
import type { RoomEvent } from '../../src/lib/protocol/events.ts';
import { describeLongOnBackends } from '../helpers/backends.ts';
import { longRun, sized } from '../helpers/long-run.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

/** The password of a user registered through `Api.register`. */
const REGISTERED_PASSWORD = 'a long enough passphrase';
const PASSPHRASE = 'hostile walk passphrase';
/** The server's `bodyLimit` (server/http/app.ts). */
const BODY_LIMIT = 64 * 1024;
/** Node's default `maxHeaderSize`: a longer request line is refused (431) before Fastify sees it. */
const HEADER_LIMIT = 16 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// Hostile values. Each has a category, the raw JSON to put in a body and the raw (already percent-encoded) text
// to put in a URL. `url: null`: the value has no URL spelling (a JSON number); `json: null`: it is about URLs only.

interface Hostile {
	category: string;
	label: string;
	json: string | null;
	url: string | null;
}

const MB = 1024 * 1024;
const enc = (s: string) => encodeURIComponent(s);
const str = (category: string, label: string, value: string): Hostile => ({
	category,
	label,
	json: JSON.stringify(value),
	url: enc(value),
});
const rawJson = (category: string, label: string, json: string): Hostile => ({
	category,
	label,
	json,
	url: null,
});
const rawUrl = (category: string, label: string, url: string): Hostile => ({
	category,
	label,
	json: null,
	url,
});

function hostileValues(ids: { roomId: string; foreignRoomId: string; userId: string }): Hostile[] {
	return [
		str('nul', 'NUL', '\u0000'),
		str('nul', 'NUL inside', 'ab\u0000cd'),
		str('nul', 'NUL after a uuid', `${ids.roomId}\u0000`),
		rawUrl('nul', '%00', '%00'),
		rawUrl('nul', 'a%00b', 'a%00b'),
		str('huge', '1 MB', 'x'.repeat(MB)),
		// Long enough to hurt, short enough to get past the body limit and Node's header limit.
		{ category: 'huge', label: '60 kB', json: JSON.stringify('y'.repeat(60_000)), url: null },
		rawUrl('huge', '8 kB', 'y'.repeat(8_000)),
		str('number', '-1', '-1'),
		rawJson('number', '-1 (number)', '-1'),
		str('number', '-0', '-0'),
		rawJson('number', '-0 (number)', '-0'),
		rawJson('number', '0 (number)', '0'),
		rawJson('number', '1.5 (number)', '1.5'),
		str('number', '1e309', '1e309'),
		rawJson('number', '1e309 (number)', '1e309'),
		rawJson('number', '-1e309 (number)', '-1e309'),
		str('number', 'NaN', 'NaN'),
		str('number', 'Infinity', 'Infinity'),
		str('number', '2^63', '9223372036854775808'),
		rawJson('number', '2^63 (number)', '9223372036854775808'),
		str('number', '2^64', '18446744073709551616'),
		str('number', '2^53+1', '9007199254740993'),
		str('number', '-2^63-1', '-9223372036854775809'),
		str('number', 'hex', '0x10'),
		str('number', 'exponent', '1e3'),
		str('number', 'with space', ' 5'),
		str('date', 'year 0', '0000-01-01T00:00:00Z'),
		str('date', 'negative year', '-000001-01-01T00:00:00Z'),
		str('date', 'past JS max', '275760-09-13T00:00:00.001Z'),
		str('date', 'date only', '1970-01-01'),
		str('date', 'Feb 30', '2026-02-30'),
		str('date', 'Feb 30 with time', '2026-02-30T00:00:00Z'),
		str('date', 'hour 24', '2026-01-01T24:00:00Z'),
		str('date', 'year 10000', '10000-01-01T00:00:00Z'),
		str('date', 'offset +25:00', '2026-01-01T00:00:00+25:00'),
		str('date', 'infinity', 'infinity'),
		str('date', 'epoch', '0'),
		rawJson('type', 'array', '[]'),
		rawJson('type', 'array of strings', '["a","b"]'),
		rawJson('type', 'object', '{}'),
		rawJson('type', 'object with a field', '{"a":"b"}'),
		rawJson('type', 'true', 'true'),
		rawJson('type', 'false', 'false'),
		rawJson('type', 'null', 'null'),
		str('type', '"true"', 'true'),
		str('type', '"null"', 'null'),
		str('type', '"[]"', '[]'),
		str('type', '"{}"', '{}'),
		str('type', 'empty', ''),
		str('type', 'blank', '   '),
		{ category: 'unicode', label: 'lone high surrogate', json: '"\\ud800"', url: '%ED%A0%80' },
		{ category: 'unicode', label: 'lone low surrogate', json: '"a\\udc00b"', url: 'a%ED%B0%80b' },
		str('unicode', 'RTL override', '\u202Eevil\u202C'),
		str('unicode', 'zero-width joiner', 'a\u200Db\u200Bc'),
		str('unicode', 'combining x10000', `e${'\u0301'.repeat(10_000)}`),
		str('unicode', 'BOM', '\uFEFFadmin'),
		str('unicode', 'full-width', 'ａｄｍｉｎ'),
		str('unicode', 'Cyrillic a', '\u0430dmin'),
		str('unicode', 'emoji', '👍🏽'),
		rawUrl('unicode', 'overlong /', '%C0%AF'),
		rawUrl('unicode', 'invalid percent-encoding', '%E0%A4%A'),
		rawUrl('unicode', 'bare %', '%'),
		rawUrl('unicode', 'invalid UTF-8', '%FF%FE'),
		str('sql', "' OR 1=1 --", "' OR 1=1 --"),
		str('sql', 'drop table', "'; DROP TABLE users; --"),
		str('sql', '%', '%'),
		str('sql', '_', '_'),
		str('sql', 'backslash', '\\'),
		str('sql', 'LIKE metacharacters', '%_\\'),
		str('sql', 'placeholder', '$1'),
		str('sql', 'tsquery syntax', '!(a & | b) <-> :* "'),
		str('traversal', '../../etc/passwd', '../../etc/passwd'),
		rawUrl('traversal', 'raw ../', '../../etc/passwd'),
		rawUrl('traversal', '%2e%2e%2f', '%2e%2e%2f%2e%2e%2fetc%2fpasswd'),
		rawUrl('traversal', 'double-encoded', '..%252f..%252fetc%252fpasswd'),
		str('traversal', 'backslashes', '..\\..\\windows'),
		str('uuid', 'upper-case', ids.roomId.toUpperCase()),
		str('uuid', 'braces', `{${ids.roomId}}`),
		str('uuid', 'nil', '00000000-0000-0000-0000-000000000000'),
		str('uuid', 'max', 'ffffffff-ffff-ffff-ffff-ffffffffffff'),
		str('uuid', 'no dashes', ids.roomId.replaceAll('-', '')),
		str('uuid', 'urn', `urn:uuid:${ids.roomId}`),
		str('uuid', 'trailing newline', `${ids.roomId}\n`),
		str('uuid', 'someone else’s room', ids.foreignRoomId),
		str('uuid', 'a user’s id', ids.userId),
	];
}

/**
 * `count` values of each category of `values`, different ones each time (for the sampled parts of the walk). The
 * walk starts at `start`, so that runs with different starts together cover every value.
 */
function sampler(start: number): (values: Hostile[], count?: number) => Hostile[] {
	let turn = start;
	return (values, count = 1) =>
		[...Map.groupBy(values, (v) => v.category).values()].flatMap((list) => {
			turn++;
			return list.length <= count
				? list
				: Array.from({ length: count }, (_, i) => list[(turn * count + i) % list.length] as Hostile);
		});
}

// ---------------------------------------------------------------------------------------------------------------
// What a valid request to each known route looks like (a HEAD route uses its GET's). A route without an entry
// is walked all the same, with the common query parameters and the body fields the route names when sent `{}`.

interface Actor {
	id: string;
	name: string;
	password: string;
	token: string;
}

interface Fixtures {
	user: Actor;
	other: Actor;
	third: Actor;
	/** A group room owned by `user`, with `other` as a member. */
	roomId: string;
	/** A room `user` is not in. */
	foreignRoomId: string;
}

interface RouteFixture {
	query?: (f: Fixtures) => Record<string, string>;
	body?: (f: Fixtures) => unknown;
	/** Sees each answer: the password route learns the new password when a hostile one was accepted. */
	after?: (f: Fixtures, sent: unknown, status: number) => void;
}

const p256dh = createECDH('prime256v1').generateKeys().toString('base64url');
const pushAuth = randomBytes(16).toString('base64url');
const uniqueName = () => `h_${randomBytes(6).toString('hex')}`;

const fixtures: Record<string, RouteFixture> = {
	'GET /healthz': {},
	'GET /readyz': {},
	'GET /metrics': {},
	'GET /api/config': {},
	'GET /api/me': {},
	'GET /api/me/sessions': {},
	'GET /api/me/export': {},
	// `:id` is filled with a room's id: a session that is not the user's, 404 (never `others`).
	'DELETE /api/me/sessions/:id': {},
	'GET /api/rooms': {},
	'GET /api/rooms/:id': {},
	'GET /api/push/key': {},
	'DELETE /api/rooms/:id/members/:userId': {},
	'POST /api/auth/register': { body: () => ({ name: uniqueName(), password: PASSPHRASE }) },
	'POST /api/auth/login': { body: (f) => ({ name: f.user.name, password: f.user.password }) },
	'POST /api/auth/refresh': { body: () => ({ refreshToken: randomBytes(32).toString('base64url') }) },
	'POST /api/auth/logout': { body: () => ({ refreshToken: randomBytes(32).toString('base64url') }) },
	'POST /api/auth/password': {
		body: (f) => ({ currentPassword: f.user.password, newPassword: f.user.password }),
		after(f, sent, status) {
			if (status === 204) f.user.password = (sent as { newPassword: string }).newPassword;
		},
	},
	'DELETE /api/me': { body: (f) => ({ password: `not ${f.user.password}` }) },
	'GET /api/users': { query: () => ({ q: 'h_' }) },
	'POST /api/rooms': {
		body: (f) => ({ name: 'Hostile room', isGroup: true, memberIds: [f.other.id] }),
	},
	'POST /api/rooms/:id/members': { body: (f) => ({ userId: f.third.id, role: 'member' }) },
	'PATCH /api/rooms/:id/members/:userId': { body: () => ({ role: 'admin' }) },
	'PATCH /api/rooms/:id': { body: () => ({ name: 'Hostile room', topic: 'A topic' }) },
	'PUT /api/rooms/:id/notifications': { body: () => ({ level: 'mentions' }) },
	'GET /api/rooms/:id/messages': { query: () => ({ before: '100', limit: '20' }) },
	'GET /api/rooms/:id/export': {
		query: () => ({
			format: 'csv',
			since: '2020-01-01T00:00:00Z',
			until: '2100-01-01T00:00:00Z',
			includeDeleted: 'true',
		}),
	},
	'GET /api/search': { query: (f) => ({ q: 'hello world', roomId: f.roomId }) },
	'POST /api/push/subscriptions': {
		body: () => ({
			endpoint: `https://push.example.com/send/${randomBytes(8).toString('hex')}`,
			keys: { p256dh, auth: pushAuth },
			previews: true,
		}),
	},
	'DELETE /api/push/subscriptions': { body: () => ({ endpoint: 'https://push.example.com/send/gone' }) },
};

/** The query parameters the routes read (from their schemas), and a few more that routes commonly read. */
const commonQueryParams = [
	...new Set([
		...Object.keys(exportQuery.shape),
		...Object.keys(messagesQuery.shape),
		...Object.keys(searchQuery.shape),
		...Object.keys(usersQuery.shape),
		'after',
		'cursor',
		'offset',
		'id',
		'userId',
	]),
];

const bodyMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

// ---------------------------------------------------------------------------------------------------------------
// A raw HTTP client: fetch would normalise `..` and `%2e%2e` away and re-encode what it sends.

interface Request {
	method: string;
	path: string;
	token?: string;
	headers?: Record<string, string>;
	body?: string | Buffer;
	/** What is hostile in it, for the report. */
	what: string;
}

interface Answer {
	status: number | null;
	contentType: string;
	body: string;
	error?: string;
}

function send(base: URL, agent: http.Agent, request: Request): Promise<Answer> {
	return new Promise((resolve) => {
		const headers: Record<string, string | number> = { ...request.headers };
		if (request.token) headers.authorization = `Bearer ${request.token}`;
		if (request.body !== undefined) {
			headers['content-type'] ??= 'application/json';
			headers['content-length'] = Buffer.byteLength(request.body);
		}
		let settled = false;
		const done = (answer: Answer) => {
			if (!settled) resolve(answer);
			settled = true;
		};
		const req = http.request(
			{ host: base.hostname, port: base.port, method: request.method, path: request.path, headers, agent },
			(res) => {
				const chunks: Buffer[] = [];
				res.on('data', (chunk: Buffer) => chunks.push(chunk));
				res.on('error', (error) =>
					done({ status: res.statusCode ?? null, contentType: '', body: '', error: String(error) }),
				);
				res.on('end', () =>
					done({
						status: res.statusCode ?? null,
						contentType: String(res.headers['content-type'] ?? ''),
						body: Buffer.concat(chunks).toString('utf8'),
						...(res.complete ? {} : { error: 'response cut off' }),
					}),
				);
			},
		);
		req.setTimeout(15_000, () => req.destroy(new Error('no answer within 15 s')));
		req.on('error', (error) => done({ status: null, contentType: '', body: '', error: String(error) }));
		req.end(request.body);
	});
}

async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
	let next = 0;
	await Promise.all(
		Array.from({ length: Math.min(concurrency, items.length) }, async () => {
			while (next < items.length) await work(items[next++] as T);
		}),
	);
}

// ---------------------------------------------------------------------------------------------------------------
// Building the requests of one route.

const MARK = '\u0001hostile\u0001';

/** The body with `value` (raw JSON) at `path`. */
function bodyWith(baseline: unknown, path: (string | number)[], json: string): string {
	if (path.length === 0) return json;
	const copy = structuredClone(baseline) as Record<string | number, unknown>;
	let node = copy;
	for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
	node[path.at(-1) as string | number] = MARK;
	return JSON.stringify(copy).replace(JSON.stringify(MARK), json);
}

/** Every field of a JSON value: each object key and array item, at every depth. */
function fieldPaths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
	if (Array.isArray(value))
		return value.flatMap((item, i) => [[...prefix, i], ...fieldPaths(item, [...prefix, i])]);
	if (value && typeof value === 'object')
		return Object.entries(value).flatMap(([key, item]) => [
			[...prefix, key],
			...fieldPaths(item, [...prefix, key]),
		]);
	return [];
}

/** `[name, null]`: the name alone, without `=`. */
const queryString = (params: [string, string | null][]) =>
	params.length ? `?${params.map(([k, v]) => (v === null ? k : `${k}=${v}`)).join('&')}` : '';

/** A query parameter of the wrong shape: twice, without a value, with brackets. */
const queryShapes = (name: string): [string, [string, string | null][]][] => [
	[
		'twice',
		[
			[name, 'a'],
			[name, 'b'],
		],
	],
	['without a value', [[name, null]]],
	['bracketed', [[`${name}[a]`, 'b']]],
];

/** Whole bodies of the wrong kind: each one once per body route. */
function wrongBodies(): { what: string; body: string | Buffer; headers?: Record<string, string> }[] {
	const deepObject = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
	const deepArray = `${'['.repeat(30_000)}${']'.repeat(30_000)}`;
	return [
		{ what: 'body: array', body: '[]' },
		{ what: 'body: array of objects', body: '[{"name":"a"}]' },
		{ what: 'body: string', body: '"hello"' },
		{ what: 'body: number', body: '42' },
		{ what: 'body: 1e309', body: '1e309' },
		{ what: 'body: null', body: 'null' },
		{ what: 'body: true', body: 'true' },
		{ what: 'body: deeply nested object', body: deepObject },
		{ what: 'body: deeply nested array', body: deepArray },
		{ what: 'body: not JSON', body: 'this is not json' },
		{ what: 'body: truncated JSON', body: '{"name": "a' },
		{ what: 'body: NaN', body: '{"a": NaN}' },
		{ what: 'body: NUL byte', body: '\u0000' },
		{ what: 'body: empty', body: '' },
		{
			what: 'body: invalid UTF-8',
			body: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d]),
		},
		{ what: 'body: BOM', body: '\uFEFF{}' },
		{ what: 'body: __proto__', body: '{"__proto__":{"admin":true}}' },
		{ what: 'body: constructor.prototype', body: '{"constructor":{"prototype":{"admin":true}}}' },
		{ what: 'body: NUL key', body: '{"\\u0000":1}' },
		{ what: 'body: duplicate keys', body: '{"a":1,"a":2}' },
		{ what: 'body: just over the limit', body: JSON.stringify({ a: 'z'.repeat(BODY_LIMIT) }) },
		{ what: 'body: 1 MB', body: JSON.stringify({ a: 'z'.repeat(MB) }) },
		{ what: 'body: text/plain', body: 'hello', headers: { 'content-type': 'text/plain' } },
		{ what: 'body: form', body: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
		{
			what: 'body: utf-16 JSON',
			body: '{}',
			headers: { 'content-type': 'application/json; charset=utf-16' },
		},
		{ what: 'body: content-type NUL', body: '{}', headers: { 'content-type': 'application/json%00' } },
	];
}

/** Bearer tokens and cookies that are not what they claim. */
const hostileCredentials: { what: string; headers: Record<string, string> }[] = [
	{ what: 'bearer: garbage', headers: { authorization: 'Bearer not.a.token' } },
	{ what: 'bearer: empty', headers: { authorization: 'Bearer ' } },
	{ what: 'bearer: 8 kB', headers: { authorization: `Bearer ${'a'.repeat(8_000)}` } },
	{ what: 'bearer: alg none', headers: { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' } },
	{ what: 'basic auth', headers: { authorization: 'Basic YTpi' } },
	{ what: 'cookie: invalid percent-encoding', headers: { cookie: 'refresh_token=%E0%A4%A' } },
	{ what: 'cookie: %00', headers: { cookie: 'refresh_token=%00' } },
	{ what: 'cookie: 8 kB', headers: { cookie: `refresh_token=${'c'.repeat(8_000)}` } },
	{ what: 'cookie: twice', headers: { cookie: 'refresh_token=a; refresh_token=b' } },
];

/** Paths that are the route's with something appended: the not-found handler must answer them. */
const pathSuffixes = [
	'/',
	'//',
	'/%00',
	'%00',
	'/../../etc/passwd',
	'/%2e%2e%2f%2e%2e%2f',
	';a=b',
	'/%E0%A4%A',
];

// ---------------------------------------------------------------------------------------------------------------

const snippet = (s: string) => (s.length > 200 ? `${s.slice(0, 200)}…` : s);
const shortPath = (p: string) => (p.length > 160 ? `${p.slice(0, 160)}…(${p.length} chars)` : p);

/** Why an error answer does not have the API's shape, or null when it has. */
function shapeProblem(answer: Answer): string | null {
	if (!answer.contentType.includes('application/json')) return `content-type ${answer.contentType || 'none'}`;
	let parsed: unknown;
	try {
		parsed = JSON.parse(answer.body);
	} catch {
		return 'body is not JSON';
	}
	const body = parsed as { error?: { code?: unknown; message?: unknown; issues?: unknown } };
	if (!body || typeof body !== 'object' || Object.keys(body).join() !== 'error') return 'not { error }';
	const error = body.error;
	if (!error || typeof error !== 'object') return 'error is not an object';
	if (!apiErrorCodes.includes(error.code as never)) return `unknown code ${String(error.code)}`;
	if (typeof error.message !== 'string' || !error.message) return 'no message';
	const extra = Object.keys(error).filter((k) => !['code', 'message', 'issues'].includes(k));
	if (extra.length) return `extra fields ${extra.join(', ')}`;
	if (
		error.issues !== undefined &&
		!(
			Array.isArray(error.issues) &&
			error.issues.every(
				(i: { path?: unknown; message?: unknown }) =>
					typeof i.path === 'string' && typeof i.message === 'string',
			)
		)
	)
		return 'issues malformed';
	return null;
}

// Postgres in `npm test` (the walk is the same HTTP code on both; PGlite's run is the slower one).
describeLongOnBackends('hostile HTTP input', 'postgres', (backend) => {
	let server: TestServer;
	/** The server's log, held open: a concurrent test run's global setup may remove the log directory. */
	let logFd: number | undefined;
	beforeAll(async () => {
		server = await startTestServer(backend, {
			// The walk signs in hundreds of times: neither limit may cut it short (both answer 429 before the
			// input is looked at).
			AUTH_RATE_LIMIT_PER_MINUTE: '1000000',
			LOGIN_FAILURES_PER_NAME: '1000000',
		});
		try {
			logFd = fs.openSync(server.logFile, 'r');
		} catch (error) {
			console.warn(`[${backend}] server log gone before the walk, its errors go unchecked: ${String(error)}`);
		}
	});
	afterAll(async () => {
		if (logFd !== undefined) fs.closeSync(logFd);
		await server?.close();
	});

	it('answers every route, whatever the input, without a 5xx and with the API error shape', async () => {
		const base = new URL(server.url);
		const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
		const api = server.api;
		const logSize = () => (logFd === undefined ? 0 : fs.fstatSync(logFd).size);
		const logStart = logSize();

		const register = async (prefix: string): Promise<Actor> => {
			const r = await api.register(prefix);
			return { id: r.user.id, name: r.user.name, password: REGISTERED_PASSWORD, token: r.accessToken };
		};
		const other = await register('other');
		const third = await register('third');
		const stranger = await register('stranger');
		const foreignRoomId = (await api.createGroup(stranger.token, [], 'Not yours')).id;

		const routes = server.app.routes.filter((r) => r.method !== 'OPTIONS');
		// The test server has no built client, so @fastify/static registers no file routes; the SPA fallback is
		// the not-found handler, not a route, and the suffixed paths below reach it.
		expect(routes.length).toBeGreaterThan(10);
		const routeKeys = routes.map((r) => `${r.method} ${r.url}`);
		expect(
			Object.keys(fixtures).filter((k) => !routeKeys.includes(k)),
			'fixtures of routes the server no longer has',
		).toEqual([]);

		// Which sampled values this run sends; HOSTILE_SAMPLE=<n> replays a run's choice.
		const sampleStart = sized(Math.floor(Math.random() * 10_000) + 1, 1, 'HOSTILE_SAMPLE');
		console.info(
			`[${backend}] hostile walk: sample ${sampleStart} (replay with HOSTILE_SAMPLE=${sampleStart})`,
		);
		const failures: string[] = [];
		const coverage = new Map<string, Set<string>>();
		let sent = 0;

		const check = (request: Request, answer: Answer) => {
			sent++;
			const fail = (why: string) =>
				failures.push(
					`${request.method} ${shortPath(request.path)} [${request.what}] → ${answer.status ?? 'no answer'}: ${snippet(`${why} ${answer.error ?? answer.body}`)}`,
				);
			const tooLongForNode =
				request.path.length + JSON.stringify(request.headers ?? {}).length > HEADER_LIMIT;
			if (answer.status === null) {
				// Node refuses a request line longer than its header limit and may close the socket before the
				// client has finished writing it: only such a request may go unanswered.
				if (!tooLongForNode) fail('');
				return;
			}
			if (answer.status >= 500) return fail('5xx:');
			if (answer.error) return fail(`${answer.error}:`);
			if (answer.status === 431 && tooLongForNode) return; // Node's own answer: Fastify never saw it.
			if (answer.status >= 400 && request.method !== 'HEAD') {
				const problem = shapeProblem(answer);
				if (problem) fail(`error shape (${problem}):`);
			}
		};

		const walkRoute = async (route: { method: string; url: string }) => {
			const key = `${route.method} ${route.url}`;
			const fixture = fixtures[key] ?? fixtures[key.replace(/^HEAD /, 'GET ')];
			const spec = fixture ?? {};
			// Each route gets its own user and room: deleting the account, changing the password or removing a
			// member while walking one route must not change what the next one sees.
			const user = await register('walker');
			const roomId = (await api.createGroup(user.token, [other.id], 'Walked room')).id;
			// Something to find, page through and export (a deleted message too): the rows go through every query.
			const said = randomUUID();
			const event = (e: Partial<RoomEvent>) =>
				({
					clientMsgId: randomUUID(),
					senderId: user.id,
					createdAt: new Date().toISOString(),
					...e,
				}) as RoomEvent;
			await messages.mirror(server.app.db, [
				{
					roomId,
					event: event({ kind: 'message', clientMsgId: said, content: "hello world ' OR 1=1 -- %_\\" }),
				},
				{ roomId, event: event({ kind: 'message', content: 'hello again' }) },
				{ roomId, event: event({ kind: 'delete', targetId: said }) },
			]);
			const f: Fixtures = { user, other, third, roomId, foreignRoomId };
			const values = hostileValues({ roomId, foreignRoomId, userId: other.id });
			const urlValues = values.filter((v) => v.url !== null);
			const jsonValues = values.filter((v) => v.json !== null);
			const sample = sampler(sampleStart);
			const hasBody = bodyMethods.has(route.method);

			const params = [...route.url.matchAll(/:(\w+)|\*/g)].map((m) => m[1] ?? '*');
			const pathWith = (hostile?: { param: string; url: string }) =>
				route.url.replace(/:(\w+)|\*/g, (_m, name: string | undefined) =>
					hostile?.param === (name ?? '*') ? hostile.url : name === 'userId' ? other.id : roomId,
				);
			const queryBaseline = () =>
				Object.entries(spec.query?.(f) ?? {}).map(([k, v]) => [k, enc(v)] as [string, string]);
			const bodyBaseline = () => (hasBody ? spec.body?.(f) : undefined);
			const bodyText = () => {
				const body = bodyBaseline();
				return body === undefined ? undefined : JSON.stringify(body);
			};
			// A known route reads the query parameters of its fixture; one the test does not know yet may read any.
			const readParams = fixture ? Object.keys(spec.query?.(f) ?? {}) : commonQueryParams;
			const unreadParams = commonQueryParams.filter((p) => !readParams.includes(p));

			// A route the test does not know names its required body fields when sent `{}`.
			const fields = fieldPaths(bodyBaseline() ?? {});
			if (hasBody && !spec.body) {
				const answer = await send(base, agent, {
					method: route.method,
					path: pathWith(),
					token: user.token,
					body: '{}',
					what: 'discovery',
				});
				let issues: { path: string }[] = [];
				try {
					issues =
						(JSON.parse(answer.body) as { error?: { issues?: { path: string }[] } }).error?.issues ?? [];
				} catch {
					// Not JSON: nothing to learn.
				}
				for (const issue of issues) if (issue.path !== '(root)') fields.push(issue.path.split('.'));
			}

			const jobs: (() => Promise<void>)[] = [];
			const add = (dimension: string, category: string, make: () => Omit<Request, 'method'>) =>
				jobs.push(async () => {
					const request = { ...make(), method: route.method };
					const answer = await send(base, agent, request);
					check(request, answer);
					let seen = coverage.get(`${key} ${dimension}`);
					if (!seen) coverage.set(`${key} ${dimension}`, (seen = new Set()));
					seen.add(category);
					if (spec.after && typeof request.body === 'string' && answer.status !== null) {
						try {
							spec.after(f, JSON.parse(request.body), answer.status);
						} catch {
							// A body that is not JSON changed nothing.
						}
					}
					if (request.what.endsWith('just over the limit') && answer.status !== 413)
						failures.push(`${route.method} ${route.url} [${request.what}] → ${answer.status}: expected 413`);
				});

			for (const actor of ['user', 'anonymous'] as const) {
				const token = actor === 'user' ? user.token : undefined;
				// As the user, every hostile value in `npm run test:long` and three of each category in `npm test`;
				// as nobody, one of each category (a route that wants a user refuses before it reads anything, and
				// one that does not want one ignores the token).
				const pick = (list: Hostile[]) =>
					actor === 'user' ? (longRun ? list : sample(list, 3)) : sample(list);
				const valid = () => ({ path: pathWith() + queryString(queryBaseline()), token, body: bodyText() });

				add(`${actor} valid`, 'valid', () => ({ ...valid(), what: `${actor}: valid` }));

				for (const param of params)
					for (const v of pick(urlValues))
						add(`${actor} :${param}`, v.category, () => ({
							...valid(),
							path: pathWith({ param, url: v.url as string }) + queryString(queryBaseline()),
							what: `${actor}: path :${param} = ${v.label}`,
						}));

				const queryWith = (hostile: [string, string | null][]) => {
					const names = new Set(hostile.map(([k]) => k.replace(/\[.*/, '')));
					return pathWith() + queryString([...queryBaseline().filter(([k]) => !names.has(k)), ...hostile]);
				};
				for (const name of readParams) {
					for (const v of pick(urlValues))
						add(`${actor} ?${name}`, v.category, () => ({
							...valid(),
							path: queryWith([[name, v.url as string]]),
							what: `${actor}: query ${name} = ${v.label}`,
						}));
					for (const [what, pairs] of queryShapes(name))
						add(`${actor} ?${name}`, 'type', () => ({
							...valid(),
							path: queryWith(pairs),
							what: `${actor}: query ${name} ${what}`,
						}));
				}
				// Parameters the route does not read: all of them at once, each category once.
				if (unreadParams.length > 0) {
					for (const v of sample(urlValues))
						add(`${actor} ?(unread)`, v.category, () => ({
							...valid(),
							path: queryWith(unreadParams.map((name) => [name, v.url as string])),
							what: `${actor}: query ${unreadParams.join(', ')} = ${v.label}`,
						}));
					queryShapes('').forEach(([what], i) =>
						add(`${actor} ?(unread)`, 'type', () => ({
							...valid(),
							path: queryWith(unreadParams.flatMap((name) => queryShapes(name)[i]?.[1] ?? [])),
							what: `${actor}: query ${unreadParams.join(', ')} ${what}`,
						})),
					);
				}

				if (hasBody) {
					for (const field of fields)
						for (const v of pick(jsonValues))
							add(`${actor} body.${field.join('.')}`, v.category, () => ({
								...valid(),
								body: bodyWith(bodyBaseline() ?? {}, field, v.json as string),
								what: `${actor}: body ${field.join('.')} = ${v.label}`,
							}));
					for (const wrong of wrongBodies())
						add(`${actor} body`, 'body', () => ({
							...valid(),
							body: wrong.body,
							headers: wrong.headers,
							what: `${actor}: ${wrong.what}`,
						}));
				}
			}
			// With the valid body, and with an empty one: a refresh token in the body would hide the cookie.
			for (const credential of hostileCredentials)
				for (const body of hasBody ? [bodyText, () => '{}'] : [bodyText])
					add('credentials', 'credentials', () => ({
						path: pathWith() + queryString(queryBaseline()),
						headers: credential.headers,
						body: body(),
						what: `${credential.what}, body ${body === bodyText ? 'valid' : '{}'}`,
					}));
			for (const suffix of pathSuffixes)
				add('suffix', 'suffix', () => ({
					path: pathWith() + suffix,
					token: user.token,
					body: bodyText(),
					what: `path + ${suffix}`,
				}));

			await pool(jobs, 4, (job) => job());
		};

		const started = Date.now();
		// Routes that take a body first: some of them hash passwords, the slowest part of the walk.
		const slowFirst = routes.toSorted(
			(a, b) => Number(bodyMethods.has(b.method)) - Number(bodyMethods.has(a.method)),
		);
		await pool(slowFirst, 4, walkRoute);
		const seconds = (Date.now() - started) / 1000;
		agent.destroy();

		// The server is still up and still serves.
		expect((await api.get('/healthz')).status).toBe(200);
		expect((await api.get('/readyz')).body.status).toBe('ready');
		const after = await api.register('after');
		expect((await api.get('/api/rooms', after.accessToken)).status).toBe(200);

		// Nothing failed where no status could show it (an export stream that broke after its headers).
		const logText = Buffer.alloc(logSize() - logStart);
		if (logFd !== undefined) fs.readSync(logFd, logText, 0, logText.length, logStart);
		const logErrors = logText
			.toString('utf8')
			.split('\n')
			.filter((line) => /"level":(50|60)/.test(line))
			.map(snippet);

		const categories = [
			...new Set(hostileValues({ roomId: '', foreignRoomId: '', userId: '' }).map((v) => v.category)),
		];
		const missed = [...coverage]
			.filter(([dimension]) => /(:|\?|body\.)\S+$/.test(dimension))
			.flatMap(([dimension, seen]) =>
				categories.filter((c) => !seen.has(c)).map((c) => `${dimension}: ${c}`),
			);

		console.info(
			`[${backend}] ${routes.length} routes, ${sent} requests, ${seconds.toFixed(1)} s: ${routeKeys.join(', ')}`,
		);
		expect(missed, 'parameters and fields that missed a category of hostile value').toEqual([]);
		expect(failures, `${failures.length} of ${sent} requests failed`).toEqual([]);
		expect(logErrors, 'errors in the server log').toEqual([]);
	}, 180_000);
});

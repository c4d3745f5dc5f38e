import { createECDH } from 'node:crypto';
import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';

/**
 * Every environment variable the server reads, parsed once at boot.
 * Nothing else in the server touches `process.env`.
 */
const positiveInt = (fallback: number) =>
	z.coerce
		.number({ error: 'expected a whole number' })
		.int('expected a whole number')
		.positive('expected a number above 0')
		.default(fallback);

const urlWithProtocol = (protocols: string[]) =>
	z
		.url({ error: `expected a URL starting with ${protocols.join(' or ')}` })
		.refine(
			(value) => protocols.some((p) => value.startsWith(`${p}//`)),
			`expected a URL starting with ${protocols.join(' or ')}`,
		);

const emptyAsUndefined = (value: unknown) => (value === '' ? undefined : value);

/** An IPv4 or IPv6 address, optionally with a /prefix, or one of proxy-addr's names. */
function isProxyAddress(entry: string): boolean {
	if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) return true;
	const [address, prefix, ...rest] = entry.split('/');
	if (rest.length > 0 || !address || isIP(address) === 0) return false;
	if (prefix === undefined) return true;
	const bits = Number(prefix);
	return /^\d+$/.test(prefix) && bits <= (isIP(address) === 4 ? 32 : 128);
}

/** Whether `publicKey` is the P-256 public key of `privateKey` (both base64url, as web-push prints them). */
function vapidPairMatches(publicKey: string, privateKey: string): boolean {
	try {
		const ecdh = createECDH('prime256v1');
		ecdh.setPrivateKey(Buffer.from(privateKey, 'base64url'));
		return ecdh.getPublicKey().toString('base64url') === publicKey;
	} catch {
		// setPrivateKey throws for a value outside the curve's range: no match.
		return false;
	}
}

const schema = z
	.object({
		NODE_ENV: z
			.enum(['development', 'production', 'test'], {
				error: 'expected development, production or test',
			})
			.default('development'),
		HOST: z.string().min(1).default('127.0.0.1'),
		PORT: z.coerce
			.number({ error: 'expected a port number' })
			.int('expected a port number')
			.min(0, 'expected a port from 0 to 65535')
			.max(65535, 'expected a port from 0 to 65535')
			.default(3000),
		DATA_DIR: z.string().min(1).default('./data'),
		STATIC_DIR: z.string().min(1).default('./build'),
		DATABASE_URL: z.preprocess(emptyAsUndefined, urlWithProtocol(['postgres:', 'postgresql:']).optional()),
		DATABASE_POOL_SIZE: positiveInt(10),
		REDIS_URL: z.preprocess(emptyAsUndefined, urlWithProtocol(['redis:', 'rediss:']).optional()),
		REDIS_PREFIX: z.string().min(1).default('chat'),
		JWT_SECRET: z.preprocess(
			emptyAsUndefined,
			z.string().min(32, 'expected at least 32 characters of random text').optional(),
		),
		JWT_PREVIOUS_SECRETS: z.preprocess(
			emptyAsUndefined,
			z
				.string()
				.transform((v) =>
					v
						.split(',')
						.map((s) => s.trim())
						.filter(Boolean),
				)
				.pipe(z.array(z.string().min(32, 'expected secrets of at least 32 characters each')))
				.default([]),
		),
		/** Attachments (issue 19): the largest file, and what one user may have stored in all, in bytes. */
		ATTACHMENT_MAX_BYTES: positiveInt(25 * 1024 * 1024),
		ATTACHMENT_QUOTA_BYTES: positiveInt(1024 * 1024 * 1024),
		/**
		 * Garbage collection of attachments (server/files/collect.ts): minutes between passes (0: none), and the hours
		 * an upload may stay unfinished, and a stored file unsent, before it is collected.
		 */
		ATTACHMENT_GC_INTERVAL_MINUTES: z.coerce
			.number({ error: 'expected a whole number of minutes' })
			.int('expected a whole number of minutes')
			.min(0, 'expected 0 (no collection) or more minutes')
			.default(60),
		ATTACHMENT_GC_GRACE_HOURS: positiveInt(24),
		/**
		 * Attachments in an S3-compatible object store (every node of a cluster reads the same files) when
		 * S3_BUCKET is set; else on the local disk under DATA_DIR/files (one node).
		 */
		S3_BUCKET: z.preprocess(emptyAsUndefined, z.string().min(3, 'expected a bucket name').optional()),
		S3_ENDPOINT: z.preprocess(emptyAsUndefined, urlWithProtocol(['http:', 'https:']).optional()),
		S3_REGION: z.string().min(1).default('us-east-1'),
		S3_ACCESS_KEY_ID: z.preprocess(emptyAsUndefined, z.string().optional()),
		S3_SECRET_ACCESS_KEY: z.preprocess(emptyAsUndefined, z.string().optional()),
		S3_FORCE_PATH_STYLE: z
			.enum(['true', 'false'], { error: 'expected true or false' })
			.default('true')
			.transform((v) => v === 'true'),
		S3_PREFIX: z.string().default(''),
		ACCESS_TOKEN_TTL_SECONDS: positiveInt(15 * 60),
		REFRESH_TOKEN_TTL_DAYS: positiveInt(30),
		LOG_LEVEL: z
			.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
				error: 'expected one of fatal, error, warn, info, debug, trace, silent',
			})
			.default('info'),
		/**
		 * The reverse proxies whose `X-Forwarded-For` entries are believed: `false`, or addresses, CIDR ranges and
		 * the names `loopback`, `linklocal`, `uniquelocal`, comma-separated. The client address is the last entry
		 * not added by one of them, for HTTP and WebSocket alike (server/http/client-address.ts).
		 */
		TRUST_PROXY: z.preprocess(
			emptyAsUndefined,
			z
				.string()
				.default('false')
				.transform((v, ctx) => {
					const value = v.trim().toLowerCase();
					if (['false', '0', 'no'].includes(value)) return [] as string[];
					if (['true', '1', 'yes'].includes(value)) {
						ctx.addIssue({
							code: 'custom',
							message:
								'name the proxies to trust instead of true (e.g. loopback, or 10.0.0.0/8): trusting every ' +
								'X-Forwarded-For entry lets clients choose their own address',
						});
						return z.NEVER;
					}
					const entries = value
						.split(',')
						.map((e) => e.trim())
						.filter(Boolean);
					const bad = entries.find((e) => !isProxyAddress(e));
					if (bad) {
						ctx.addIssue({
							code: 'custom',
							message: `"${bad}" is not an address, a CIDR range, loopback, linklocal or uniquelocal`,
						});
						return z.NEVER;
					}
					return entries;
				}),
		),
		/** OpenTelemetry: spans are exported over OTLP/HTTP only when one of these is set (server/tracing.ts). */
		OTEL_EXPORTER_OTLP_ENDPOINT: z.preprocess(
			emptyAsUndefined,
			urlWithProtocol(['http:', 'https:']).optional(),
		),
		OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.preprocess(
			emptyAsUndefined,
			urlWithProtocol(['http:', 'https:']).optional(),
		),
		OTEL_SERVICE_NAME: z.string().min(1).default('chat'),
		/** When set, GET /metrics answers only requests with `Authorization: Bearer <METRICS_TOKEN>`. */
		METRICS_TOKEN: z.preprocess(
			emptyAsUndefined,
			z.string().min(16, 'expected at least 16 characters of random text').optional(),
		),
		AUTH_RATE_LIMIT_PER_MINUTE: positiveInt(60),
		LOGIN_FAILURES_PER_NAME: positiveInt(10),
		LOGIN_FAILURE_WINDOW_MINUTES: positiveInt(15),
		WRITE_UPDATES_PER_10S: positiveInt(50),
		WRITE_MESSAGES_PER_10S: positiveInt(2000),
		DOCUMENTS_PER_CONNECTION: positiveInt(100),
		WS_CONNECTIONS_PER_IP_PER_MINUTE: positiveInt(300),
		/**
		 * Frames one WebSocket may send per 10 s, of every kind (room logins, updates, awareness, questions); the
		 * same number bounds every update and every room login of one user on one node. Over it, the socket closes
		 * with `rate-limited`.
		 */
		WS_FRAMES_PER_10S: positiveInt(1000).refine((n) => n >= 100, 'expected at least 100'),
		CONTENT_FILTER: z
			.enum(['off', 'reject', 'mask'], { error: 'expected off, reject or mask' })
			.default('off'),
		CONTENT_FILTER_WORDS: z.preprocess(
			emptyAsUndefined,
			z
				.string()
				.transform((v) =>
					v
						.split(',')
						.map((w) => w.trim().toLowerCase())
						.filter(Boolean),
				)
				.default([]),
		),
		COMPACT_AFTER_UPDATES: positiveInt(500),
		ROOM_WINDOW_MESSAGES: positiveInt(5000).refine((n) => n >= 100, 'expected at least 100'),
		SHUTDOWN_TIMEOUT_MS: positiveInt(15_000),
		/** Web Push (server/push/): a fixed VAPID key pair; unset, the pair is generated once and kept in the database. */
		VAPID_PUBLIC_KEY: z.preprocess(
			emptyAsUndefined,
			z
				.string()
				.regex(
					/^B[A-Za-z0-9_-]{86}$/,
					'expected an uncompressed P-256 public key in base64url (87 characters)',
				)
				.optional(),
		),
		VAPID_PRIVATE_KEY: z.preprocess(
			emptyAsUndefined,
			z
				.string()
				.regex(/^[A-Za-z0-9_-]{43}$/, 'expected a P-256 private key in base64url (43 characters)')
				.optional(),
		),
		VAPID_SUBJECT: z.preprocess(
			emptyAsUndefined,
			z
				.string()
				.regex(/^(mailto:[^\s@]+@[^\s@]+|https:\/\/\S+)$/, 'expected a mailto: address or an https: URL')
				.default('mailto:admin@localhost'),
		),
	})
	.superRefine((env, ctx) => {
		if (Boolean(env.S3_ACCESS_KEY_ID) !== Boolean(env.S3_SECRET_ACCESS_KEY)) {
			ctx.addIssue({
				code: 'custom',
				path: [env.S3_ACCESS_KEY_ID ? 'S3_SECRET_ACCESS_KEY' : 'S3_ACCESS_KEY_ID'],
				message:
					'set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither (the SDK then finds credentials)',
			});
		}
		if (env.ATTACHMENT_QUOTA_BYTES < env.ATTACHMENT_MAX_BYTES) {
			ctx.addIssue({
				code: 'custom',
				path: ['ATTACHMENT_QUOTA_BYTES'],
				message: `expected at least ATTACHMENT_MAX_BYTES (${env.ATTACHMENT_MAX_BYTES}): no file could ever fit`,
			});
		}
		if (env.CONTENT_FILTER !== 'off' && env.CONTENT_FILTER_WORDS.length === 0) {
			ctx.addIssue({
				code: 'custom',
				path: ['CONTENT_FILTER_WORDS'],
				message: `required when CONTENT_FILTER=${env.CONTENT_FILTER} (comma-separated words)`,
			});
		}
		if (Boolean(env.VAPID_PUBLIC_KEY) !== Boolean(env.VAPID_PRIVATE_KEY)) {
			ctx.addIssue({
				code: 'custom',
				path: [env.VAPID_PUBLIC_KEY ? 'VAPID_PRIVATE_KEY' : 'VAPID_PUBLIC_KEY'],
				message: 'set both VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY, or neither',
			});
		} else if (
			env.VAPID_PUBLIC_KEY &&
			env.VAPID_PRIVATE_KEY &&
			!vapidPairMatches(env.VAPID_PUBLIC_KEY, env.VAPID_PRIVATE_KEY)
		) {
			ctx.addIssue({
				code: 'custom',
				path: ['VAPID_PUBLIC_KEY'],
				message: 'is not the public key of VAPID_PRIVATE_KEY',
			});
		}
		if (env.NODE_ENV === 'production' && !env.JWT_SECRET) {
			ctx.addIssue({
				code: 'custom',
				path: ['JWT_SECRET'],
				message: 'required when NODE_ENV=production (at least 32 characters of random text)',
			});
		}
	});

export type Config = Readonly<
	Omit<z.infer<typeof schema>, 'DATA_DIR' | 'STATIC_DIR'> & {
		DATA_DIR: string;
		STATIC_DIR: string;
	}
>;

export class ConfigError extends Error {
	readonly code = 'config_invalid';
}

/**
 * Parses an environment (normally `process.env`) into a frozen config.
 * Throws a ConfigError whose message is one line per bad variable, naming it and what is expected.
 */
export function parseConfig(env: Record<string, string | undefined>): Config {
	const result = schema.safeParse(env);
	if (!result.success) {
		const lines = result.error.issues.map((issue) => {
			const name = String(issue.path[0] ?? 'environment');
			const given = env[name];
			const shown =
				given === undefined || /SECRET|PASSWORD|PRIVATE|URL/.test(name) ? '' : ` (got "${given}")`;
			return `Invalid ${name}: ${issue.message}${shown}`;
		});
		throw new ConfigError(lines.join('\n'));
	}
	const parsed = result.data;
	return Object.freeze({
		...parsed,
		DATA_DIR: path.resolve(parsed.DATA_DIR),
		STATIC_DIR: path.resolve(parsed.STATIC_DIR),
	});
}

import { format } from 'node:util';
import pino, { type Logger } from 'pino';
import { traceFields } from './tracing.ts';

/**
 * JSON logs. Secrets never reach a line: known secret-bearing fields are censored wherever they
 * appear, and request logging records the route and status, never bodies or headers with tokens.
 * A line written inside a span carries its `traceId` and `spanId` (see server/tracing.ts).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
	return pino(
		{
			level,
			base: { pid: process.pid },
			mixin: traceFields,
			timestamp: pino.stdTimeFunctions.isoTime,
			redact: {
				paths: [
					'password',
					'*.password',
					'token',
					'*.token',
					'accessToken',
					'*.accessToken',
					'refreshToken',
					'*.refreshToken',
					'content',
					'*.content',
					'req.headers.authorization',
					'req.headers.cookie',
					'headers.authorization',
					'headers.cookie',
				],
				censor: '[redacted]',
			},
			serializers: {
				err: pino.stdSerializers.err,
				// The path only: query strings carry search terms, which are user content.
				req: (req: { method?: string; url?: string; ip?: string }) => ({
					method: req.method,
					url: req.url?.split('?')[0],
					remoteAddress: req.ip,
				}),
			},
		},
		destination,
	);
}

/** A refusal of ours (a close code 4000–4999 with a reason): expected, and already logged where it was decided. */
export function isRefusal(value: unknown): boolean {
	const { code, reason } = (value ?? {}) as { code?: unknown; reason?: unknown };
	return typeof code === 'number' && code >= 4000 && code < 5000 && typeof reason === 'string';
}

/**
 * Sends what libraries print with `console` (Hocuspocus prints hook exceptions with `console.error` and a stack)
 * through the JSON logger instead, one line each: the "JSON lines" promise holds for the whole process. Output
 * about one of our own refusals goes to debug (the refusal is logged once, where it is decided, and summarised in a
 * flood); an Error keeps its stack inside the line's `err`.
 */
export function routeConsole(log: Logger): void {
	const out = log.child({ component: 'console' });
	const route =
		(level: 'debug' | 'info' | 'warn' | 'error') =>
		(...args: unknown[]): void => {
			const error = args.find((a) => a instanceof Error);
			// `[beforeSync] <message>`: Hocuspocus repeating a hook's exception, which the hook reported already.
			const expected = args.some(isRefusal) || (typeof args[0] === 'string' && /^\[\w+\]$/.test(args[0]));
			const text = format(...args.filter((a) => a !== error && !isRefusal(a)));
			const fields = error && !expected ? { err: error } : {};
			out[expected ? 'debug' : level](fields, text || (error ? error.message : ''));
		};
	console.log = route('info');
	console.info = route('info');
	console.debug = route('debug');
	console.warn = route('warn');
	console.error = route('error');
}

/**
 * Logs a kind of event that an attacker can repeat at will (a refused update, a refused room login) without
 * letting them fill the log: the first `perInterval` events of each interval get a line each; after that they are
 * only counted, and one summary line per interval says how many were left out, by reason.
 */
export class FloodLog {
	readonly #log: Logger;
	readonly #perInterval: number;
	readonly #intervalMs: number;
	readonly #summary: string;
	#windowStart = 0;
	#logged = 0;
	readonly #suppressed = new Map<string, number>();
	#flush: ReturnType<typeof setTimeout> | undefined;

	constructor(log: Logger, options: { perInterval?: number; intervalMs?: number; summary?: string } = {}) {
		this.#log = log;
		this.#perInterval = options.perInterval ?? 20;
		this.#intervalMs = options.intervalMs ?? 10_000;
		this.#summary = options.summary ?? 'more refusals than are logged one by one; counted by reason';
	}

	warn(fields: Record<string, unknown> & { reason: string }, message: string): void {
		this.#write('warn', fields, message);
	}

	info(fields: Record<string, unknown> & { reason: string }, message: string): void {
		this.#write('info', fields, message);
	}

	error(fields: Record<string, unknown> & { reason: string }, message: string): void {
		this.#write('error', fields, message);
	}

	#write(
		level: 'info' | 'warn' | 'error',
		fields: Record<string, unknown> & { reason: string },
		message: string,
	): void {
		const now = Date.now();
		if (now - this.#windowStart >= this.#intervalMs) {
			this.#summarise();
			this.#windowStart = now;
			this.#logged = 0;
		}
		if (this.#logged < this.#perInterval) {
			this.#logged++;
			this.#log[level](fields, message);
			return;
		}
		const reason = fields.reason.split(':')[0] ?? fields.reason;
		this.#suppressed.set(reason, (this.#suppressed.get(reason) ?? 0) + 1);
		// The summary comes at the interval's end even if no further refusal arrives to trigger it.
		this.#flush ??= setTimeout(() => this.#summarise(), this.#intervalMs).unref();
	}

	#summarise(): void {
		clearTimeout(this.#flush);
		this.#flush = undefined;
		if (this.#suppressed.size === 0) return;
		const byReason = Object.fromEntries(this.#suppressed);
		const suppressed = [...this.#suppressed.values()].reduce((a, b) => a + b, 0);
		this.#suppressed.clear();
		this.#log.warn({ suppressed, byReason, intervalMs: this.#intervalMs }, this.#summary);
	}
}

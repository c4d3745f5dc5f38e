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

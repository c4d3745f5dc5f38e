/**
 * Preloaded into a server process by tests/integration/tracing.test.ts (`--import`): reports on stderr every
 * outgoing TCP connection the process attempts and every OpenTelemetry SDK module it loads, one JSON line each.
 */
import net from 'node:net';
import { registerHooks } from 'node:module';

const report = (fields: Record<string, unknown>) => process.stderr.write(`${JSON.stringify(fields)}\n`);

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
	// net.connect() passes its normalised arguments as one array: [options, callback].
	const given = Array.isArray(args[0]) ? (args[0] as unknown[]) : args;
	const first = given[0] as { port?: unknown; host?: unknown; path?: unknown } | number | string;
	const target =
		typeof first === 'object' && first !== null
			? { port: first.port, host: first.host, path: first.path }
			: { port: first, host: given[1] };
	report({ probe: 'outgoing connection', ...target });
	return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
} as typeof connect;

registerHooks({
	resolve(specifier, context, next) {
		if (/^@opentelemetry\/(sdk|exporter|context-async-hooks)/.test(specifier))
			report({ probe: 'module loaded', specifier });
		return next(specifier, context);
	},
});

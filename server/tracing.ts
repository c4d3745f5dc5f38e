import {
	context,
	INVALID_SPAN_CONTEXT,
	SpanStatusCode,
	trace,
	type Span,
	type SpanOptions,
} from '@opentelemetry/api';
import type { Logger } from 'pino';

/**
 * The service's tracer. Until `startTracing` installs the SDK it is the OpenTelemetry API's no-op: spans cost a
 * function call and go nowhere.
 */
export const tracer = trace.getTracer('chat');

/**
 * Whether `startTracing` installed the SDK. Without it `inSpan` and `withActiveSpan` leave the API out altogether:
 * its no-op still copies the active context for every child span (a few per message, about 1 % of the server's
 * busy time at the goal-1 load of docs/benchmarks.md).
 */
let tracing = false;
/** What `inSpan` hands its function when nothing is traced: a span that records nothing. */
const untraced = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Installs the OpenTelemetry SDK with an OTLP/HTTP exporter when `endpoint` (OTEL_EXPORTER_OTLP_ENDPOINT, or the
 * traces-only OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. Without one nothing is loaded, no exporter exists and
 * no connection is ever made. Returns a function that flushes the spans still buffered and stops the SDK.
 */
export async function startTracing(
	options: { endpoint?: string; tracesEndpoint?: string; serviceName: string },
	log: Logger,
): Promise<() => Promise<void>> {
	const url =
		options.tracesEndpoint ?? (options.endpoint && `${options.endpoint.replace(/\/+$/, '')}/v1/traces`);
	if (!url) return async () => {};
	const [
		{ TracerProvider, BatchSpanProcessor },
		{ OTLPTraceExporter },
		{ AsyncLocalStorageContextManager },
		{ resourceFromAttributes },
	] = await Promise.all([
		import('@opentelemetry/sdk-trace'),
		import('@opentelemetry/exporter-trace-otlp-http'),
		import('@opentelemetry/context-async-hooks'),
		import('@opentelemetry/resources'),
	]);
	const contextManager = new AsyncLocalStorageContextManager().enable();
	context.setGlobalContextManager(contextManager);
	const provider = new TracerProvider({
		resource: resourceFromAttributes({ 'service.name': options.serviceName }),
		spanProcessors: [
			new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url }), scheduledDelayMillis: 1_000 }),
		],
	});
	trace.setGlobalTracerProvider(provider);
	tracing = true;
	log.info({ url }, 'tracing: spans are exported over OTLP/HTTP');
	return async () => {
		tracing = false;
		await provider
			.shutdown()
			.catch((error: unknown) => log.warn({ err: error }, 'tracing: final export failed'));
		trace.disable();
		context.disable();
	};
}

/**
 * Runs `fn` in a new span, a child of the active one (or of `parent`), and ends it: an exception is recorded on
 * the span, which is marked as an error, and rethrown.
 */
export async function inSpan<T>(
	name: string,
	options: SpanOptions,
	fn: (span: Span) => Promise<T>,
	parent?: Span,
): Promise<T> {
	if (!tracing) return fn(untraced);
	const ctx = parent ? trace.setSpan(context.active(), parent) : context.active();
	return tracer.startActiveSpan(name, options, ctx, async (span) => {
		try {
			return await fn(span);
		} catch (error) {
			span.recordException(error instanceof Error ? error : String(error));
			span.setStatus({
				code: SpanStatusCode.ERROR,
				message: error instanceof Error ? error.message : undefined,
			});
			throw error;
		} finally {
			span.end();
		}
	});
}

/** Runs `fn` with `span` as the active span (for its children and its log lines), without ending it. */
export function withActiveSpan<T>(span: Span, fn: () => T): T {
	if (!tracing) return fn();
	return context.with(trace.setSpan(context.active(), span), fn);
}

/** The trace and span ids of the active span, for log lines; empty outside a span (or without tracing). */
export function traceFields(): { traceId?: string; spanId?: string } {
	const span = trace.getActiveSpan();
	if (!span || !trace.isSpanContextValid(span.spanContext())) return {};
	const { traceId, spanId } = span.spanContext();
	return { traceId, spanId };
}

import http from 'node:http';

/** A span as an OTLP/HTTP JSON export carries it, flattened: ids in hex, attributes as plain values. */
export interface ReceivedSpan {
	traceId: string;
	spanId: string;
	parentSpanId: string;
	name: string;
	attributes: Record<string, unknown>;
	links: { traceId: string; spanId: string }[];
	service: string;
}

type AnyValue = {
	stringValue?: string;
	intValue?: string | number;
	doubleValue?: number;
	boolValue?: boolean;
	arrayValue?: { values?: AnyValue[] };
};
type KeyValue = { key: string; value: AnyValue };

const toHex = (id: string | undefined) =>
	!id ? '' : /^[0-9a-f]+$/i.test(id) ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex');

function plain(value: AnyValue): unknown {
	if (value.arrayValue) return (value.arrayValue.values ?? []).map(plain);
	if (value.intValue !== undefined) return Number(value.intValue);
	return value.stringValue ?? value.doubleValue ?? value.boolValue;
}
const attributesOf = (list: KeyValue[] | undefined) =>
	Object.fromEntries((list ?? []).map((kv) => [kv.key, plain(kv.value)]));

/**
 * An OTLP/HTTP receiver for tests: accepts JSON exports on POST /v1/traces and keeps every span. Knows only
 * what the test needs of the format (OTLP 1.x JSON encoding).
 */
export async function startOtlpReceiver(): Promise<{
	url: string;
	port: number;
	spans: ReceivedSpan[];
	requests: number;
	close(): Promise<void>;
}> {
	const spans: ReceivedSpan[] = [];
	const state = { requests: 0 };
	const server = http.createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on('data', (c: Buffer) => chunks.push(c));
		req.on('end', () => {
			state.requests++;
			if (req.method !== 'POST' || req.url !== '/v1/traces') {
				res.writeHead(404).end();
				return;
			}
			const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
				resourceSpans?: {
					resource?: { attributes?: KeyValue[] };
					scopeSpans?: {
						spans?: {
							traceId: string;
							spanId: string;
							parentSpanId?: string;
							name: string;
							attributes?: KeyValue[];
							links?: { traceId: string; spanId: string }[];
						}[];
					}[];
				}[];
			};
			for (const rs of body.resourceSpans ?? []) {
				const service = String(attributesOf(rs.resource?.attributes)['service.name'] ?? '');
				for (const ss of rs.scopeSpans ?? [])
					for (const s of ss.spans ?? [])
						spans.push({
							traceId: toHex(s.traceId),
							spanId: toHex(s.spanId),
							parentSpanId: toHex(s.parentSpanId),
							name: s.name,
							attributes: attributesOf(s.attributes),
							links: (s.links ?? []).map((l) => ({ traceId: toHex(l.traceId), spanId: toHex(l.spanId) })),
							service,
						});
			}
			res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
		});
	});
	await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
	const port = (server.address() as { port: number }).port;
	return {
		url: `http://127.0.0.1:${port}`,
		port,
		spans,
		get requests() {
			return state.requests;
		},
		close: () => new Promise<void>((resolve) => server.close(() => resolve())),
	};
}

import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, waitFor } from '../helpers/collab.ts';
import { startOtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.ts';
import { spawnServer } from '../helpers/process.ts';
import { Api, startTestServer, tmpDir, type TestServer } from '../helpers/server.ts';
import { seedPglite } from '../helpers/pglite-template.ts';

/**
 * OpenTelemetry (issue 8): with an OTLP endpoint, one message is one connected trace from the connection to its
 * Postgres row, and the log lines of that message carry its trace id; without one, the SDK is never loaded and
 * the server connects to nothing.
 */
describe('traces, with OTEL_EXPORTER_OTLP_ENDPOINT', () => {
	let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
	let server: TestServer;

	beforeAll(async () => {
		receiver = await startOtlpReceiver();
		server = await startTestServer('pglite', {
			OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
			OTEL_SERVICE_NAME: 'chat-test',
		});
	});
	afterAll(async () => {
		await server?.close();
		await receiver?.close();
	});

	it("follows one message from its connection to its Postgres row, and its log lines carry the trace's id", async () => {
		const ana = await server.api.register('ana');
		const ben = await server.api.register('ben');
		const room = await server.api.createGroup(ana.accessToken, [ben.user.id]);
		const client = connect(server.wsUrl, room.id, ana.accessToken, ana.user.id);
		try {
			await waitFor(() => client.provider.isSynced);
			const { clientMsgId } = client.send('a message worth following');
			await client.synced();

			const byName = (trace: string, name: string) =>
				receiver.spans.filter((s) => s.traceId === trace && s.name === name);
			let update: ReceivedSpan | undefined;
			await waitFor(() => {
				update = receiver.spans.find(
					(s) =>
						s.name === 'chat.update' &&
						(s.attributes['chat.client_msg_ids'] as string[] | undefined)?.includes(clientMsgId),
				);
				return update !== undefined && byName(update.traceId, 'chat.durable_append').length > 0;
			}, 10_000);
			const root = update as ReceivedSpan;
			expect(root.service).toBe('chat-test');
			expect(root.attributes['chat.room_id']).toBe(room.id);
			const [validate] = byName(root.traceId, 'chat.validate');
			const [append] = byName(root.traceId, 'chat.durable_append');
			expect(validate?.parentSpanId).toBe(root.spanId);
			expect(append?.parentSpanId).toBe(root.spanId);
			expect(append?.attributes['chat.batch.events']).toBe(1);

			// The HTTP requests have their own traces, with the authentication inside.
			const created = receiver.spans.find((s) => s.name === 'POST /api/rooms');
			expect(created?.attributes['http.response.status_code']).toBe(201);
			expect(
				receiver.spans.some((s) => s.name === 'chat.authenticate' && s.traceId === created?.traceId),
			).toBe(true);

			const lines = fs
				.readFileSync(server.logFile, 'utf8')
				.split('\n')
				.filter((l) => l.includes(clientMsgId))
				.map((l) => JSON.parse(l) as { msg: string; traceId?: string });
			expect(lines.map((l) => l.msg)).toContain('update accepted');
			for (const line of lines) expect(line.traceId, line.msg).toBe(root.traceId);
		} finally {
			client.destroy();
		}
	}, 30_000);
});

describe('traces, without an OTLP endpoint', () => {
	/** Runs the real server with the connection recorder preloaded, and a short session against it. */
	async function session(env: Record<string, string>) {
		const dataDir = await seedPglite(tmpDir('otel'));
		const server = spawnServer({ DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info', ...env }, [
			process.execPath,
			'--import',
			'./tests/helpers/record-connections.ts',
			'server/main.ts',
		]);
		try {
			const url = await server.ready;
			const api = new Api(url);
			const ana = await api.register('ana');
			const ben = await api.register('ben');
			const room = await api.createGroup(ana.accessToken, [ben.user.id]);
			const client = connect(`${url.replace(/^http/, 'ws')}/collab`, room.id, ana.accessToken, ana.user.id);
			client.send('hello');
			await client.synced();
			client.destroy();
			// Longer than the exporter's batch delay (1 s), so a configured exporter would have sent by now.
			await new Promise((r) => setTimeout(r, 1_500));
		} finally {
			server.proc.kill('SIGTERM');
			await server.exited;
			fs.rmSync(dataDir, { recursive: true, force: true });
		}
		const probes = server
			.output()
			.split('\n')
			.filter((l) => l.startsWith('{"probe"'))
			.map((l) => JSON.parse(l) as { probe: string; port?: number; specifier?: string });
		return {
			connections: probes.filter((p) => p.probe === 'outgoing connection'),
			modules: probes.filter((p) => p.probe === 'module loaded').map((p) => p.specifier),
		};
	}

	it('loads no exporter and connects to nothing (on the embedded database)', async () => {
		const { connections, modules } = await session({});
		expect(modules).toEqual([]);
		expect(connections).toEqual([]);
	}, 60_000);

	it('whereas with an endpoint the same recorder sees the SDK loaded and the exporter connect', async () => {
		const receiver = await startOtlpReceiver();
		try {
			const { connections, modules } = await session({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
			expect(modules).toContain('@opentelemetry/exporter-trace-otlp-http');
			expect(connections.some((c) => Number(c.port) === receiver.port)).toBe(true);
			expect(receiver.spans.some((s) => s.name === 'chat.update')).toBe(true);
		} finally {
			await receiver.close();
		}
	}, 60_000);
});

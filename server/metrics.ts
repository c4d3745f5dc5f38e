import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Why an authentication failed, for `chat_auth_failures_total`. A closed set: labels must never carry a user,
 * a room or anything else unbounded.
 */
export type AuthFailureReason =
	| 'missing_token'
	| 'token_expired'
	| 'token_invalid'
	| 'wrong_credentials'
	| 'name_locked'
	| 'refresh_unknown'
	| 'refresh_expired'
	| 'refresh_reused'
	| 'account_gone'
	| 'rate_limited'
	| 'not_a_member'
	| 'session_ended';

/** Latency buckets for work that usually takes milliseconds and may take seconds when something is wrong. */
const secondsBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The service's Prometheus metrics, one registry per server (tests run several in one process). Served at
 * `GET /metrics`; what each one means, and the alerts worth setting on them, is in docs/operations.md.
 * Labels are closed sets (kinds, reasons, route patterns, status codes): never a user or room id.
 */
export class Metrics {
	readonly registry = new Registry();

	readonly eventsAccepted = new Counter({
		name: 'chat_events_accepted_total',
		help: 'Room events (messages, edits, deletes, reactions) accepted, durably stored and relayed, by kind.',
		labelNames: ['kind'] as const,
		registers: [this.registry],
	});

	readonly updatesRejected = new Counter({
		name: 'chat_updates_rejected_total',
		help: 'Yjs updates refused before they reached anyone, by reason (the close reason the client gets).',
		labelNames: ['reason'] as const,
		registers: [this.registry],
	});

	readonly updateBytes = new Histogram({
		name: 'chat_update_bytes',
		help: 'Size of the Yjs updates that carry new events, in bytes.',
		buckets: [64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576],
		registers: [this.registry],
	});

	readonly durableAppendSeconds = new Histogram({
		name: 'chat_durable_append_seconds',
		help: 'Duration of one durable append: the Postgres transaction that writes a batch of updates to the log and their events to the mirror.',
		buckets: secondsBuckets,
		registers: [this.registry],
	});

	readonly durableAppendBatch = new Histogram({
		name: 'chat_durable_append_batch_updates',
		help: 'Updates committed together in one durable append (group commit).',
		buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
		registers: [this.registry],
	});

	readonly mirrorLagSeconds = new Histogram({
		name: 'chat_mirror_lag_seconds',
		help: 'From the moment the server received an update to the commit of its rows in the messages mirror (nothing is relayed or acknowledged before).',
		buckets: secondsBuckets,
		registers: [this.registry],
	});

	readonly compactions = new Counter({
		name: 'chat_compactions_total',
		help: "Compactions of a room's update log into its snapshot, by result (ok, failed).",
		labelNames: ['result'] as const,
		registers: [this.registry],
	});

	readonly compactionSeconds = new Histogram({
		name: 'chat_compaction_seconds',
		help: 'Duration of one compaction.',
		buckets: secondsBuckets,
		registers: [this.registry],
	});

	readonly httpRequests = new Counter({
		name: 'chat_http_requests_total',
		help: 'HTTP requests answered, by method, route pattern (unmatched for no route) and status code.',
		labelNames: ['method', 'route', 'status'] as const,
		registers: [this.registry],
	});

	readonly httpSeconds = new Histogram({
		name: 'chat_http_request_duration_seconds',
		help: 'HTTP request duration, by method and route pattern.',
		labelNames: ['method', 'route'] as const,
		buckets: secondsBuckets,
		registers: [this.registry],
	});

	readonly authFailures = new Counter({
		name: 'chat_auth_failures_total',
		help: 'Failed authentications over HTTP (sign-in, refresh, bearer tokens) and of collaboration connections, by channel and reason.',
		labelNames: ['channel', 'reason'] as const,
		registers: [this.registry],
	});

	readonly attachmentsCollected = new Counter({
		name: 'chat_attachments_collected_total',
		help: 'Attachments garbage-collected, by reason: abandoned (an upload never finished), unsent (stored and never sent in a message), deleted (every message that carried it was deleted).',
		labelNames: ['reason'] as const,
		registers: [this.registry],
	});

	readonly attachmentBytesFreed = new Counter({
		name: 'chat_attachment_bytes_freed_total',
		help: 'Bytes freed by garbage collection of attachments, by store: blobs (files and thumbnails deleted from the blob store) or uploads (partial uploads removed from DATA_DIR/uploads).',
		labelNames: ['store'] as const,
		registers: [this.registry],
	});

	readonly attachmentGcPasses = new Counter({
		name: 'chat_attachment_gc_passes_total',
		help: 'Garbage collection passes over attachments on this node, by result: ok, skipped (another node was collecting), failed.',
		labelNames: ['result'] as const,
		registers: [this.registry],
	});

	constructor() {
		collectDefaultMetrics({ register: this.registry });
	}

	/**
	 * Gauges read when Prometheus scrapes: open collaboration connections, loaded room documents, and whether
	 * Redis answers (only registered when the node uses Redis).
	 */
	observe(sources: { connections(): number; documents(): number; redisUp?: () => boolean }): void {
		new Gauge({
			name: 'chat_connections',
			help: 'Open collaboration (WebSocket) connections on this node.',
			registers: [this.registry],
			collect() {
				this.set(sources.connections());
			},
		});
		new Gauge({
			name: 'chat_documents_loaded',
			help: 'Room documents loaded in memory on this node.',
			registers: [this.registry],
			collect() {
				this.set(sources.documents());
			},
		});
		const redisUp = sources.redisUp;
		if (redisUp) {
			new Gauge({
				name: 'chat_redis_up',
				help: '1 when the connection to Redis is ready, 0 when it is not (cross-node relay waits).',
				registers: [this.registry],
				collect() {
					this.set(redisUp() ? 1 : 0);
				},
			});
		}
	}
}

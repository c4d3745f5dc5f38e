/**
 * Where one update's time goes inside our server, from its frame's arrival to its relay: the benchmark server
 * (bench/bench-server.ts) with BENCH_STAGES=<dir> stamps every client update at each stage of the update path and,
 * when it stops, writes the percentiles of each stretch between two stages into <dir> (bench/stages.ts;
 * `BENCH_STAGES=<dir> npm run bench:load`, then `npm run bench:stages -- <dir>/*`). Only the benchmarks load this
 * file: the stamps are monkey patches on Hocuspocus's `Connection` and `Document`, the durable log and the database
 * client, and extensions around the standard update path. The report covers the updates between the last two
 * SIGUSR2 (the GC the load and capacity benchmarks ask for before their windows and after them: the windows, and
 * capacity's last step), or the whole run without them; only updates that carried events (that reached the
 * database) are counted.
 *
 * The stages, in order:
 * - `arrive`: the frame reaches Hocuspocus (`Connection.handleMessage`);
 * - `sync`: the update path's first `beforeSync` (the connection's earlier frames are done, the hooks before ran);
 * - `judged`: UpdateValidation resolved (rate limits, the judge, attachment checks);
 * - `queued`: the durable log took it (`DurableLog.append`);
 * - `sql`: the batch it is in was sent to the database (after the group commit's turn, or the commit before it);
 * - `sqlDone`: the database answered;
 * - `durable`: its append promise resolved (the batch's bookkeeping);
 * - `hooks`: the last `beforeSync` resolved (the writer was acknowledged);
 * - `integrated`: Yjs integrated it into the document (its `update` event reached `Document.handleUpdate`);
 * - `applied`: Hocuspocus is done with the frame (`afterHandleMessage`);
 * - `relayed`: the document's flush sent it to the room's other connections (`broadcastUpdate`, after sending);
 * - `written`: the pass of uncorks after that wrote those frames to the sockets (server/collab/turn-batched-socket.ts).
 */
import { Connection, Document, type Extension, type beforeSyncPayload } from '@hocuspocus/server';
import type { UpdatePathParts } from '../server/collab/collab.ts';
import { carriesUpdate } from '../server/collab/live-rooms.ts';
import { uncorkObservers } from '../server/collab/turn-batched-socket.ts';
import { WindowedSamples, writeStages } from './stages.ts';

const stages = [
	'arrive',
	'sync',
	'judged',
	'queued',
	'sql',
	'sqlDone',
	'durable',
	'hooks',
	'integrated',
	'applied',
	'relayed',
	'written',
] as const;
type Stage = (typeof stages)[number];
type Stamps = Partial<Record<Stage, number>>;

/** Frames and their arrival, until the connection takes them up (the same array reaches `beforeHandleMessage`). */
const arrivals = new WeakMap<Uint8Array, number>();
/** The frame each connection is handling now (a connection handles its frames one at a time). */
const current = new WeakMap<object, Stamps>();
/** Every stamped update that reached the database, in order, kept by the benchmarks' windows. */
let done: WindowedSamples<Stamps> | undefined;
/** Updates integrated into each document, not yet relayed (a flush relays all of them, merged). */
const unsent = new WeakMap<object, Stamps[]>();
/** Each update's stamps by its span (`chat.update`), which the durable log's entry carries. */
const spanStamps = new WeakMap<object, Stamps>();
/** Updates relayed whose frames wait in corked sockets for the next pass of uncorks. */
let unwritten: Stamps[] = [];
/** Appends taken by the durable log, not yet sent to the database. */
let queued: Stamps[] = [];

let installed = false;

/** Patches Hocuspocus's Connection and the durable log of `parts`; returns the extensions that stamp the rest. */
export function stageClock(parts: UpdatePathParts): {
	first: Extension;
	afterValidation: Extension;
	last: Extension;
} {
	if (!installed) {
		installed = true;
		done = new WindowedSamples();
		const handle = Connection.prototype.handleMessage;
		Connection.prototype.handleMessage = function (this: Connection, data: Uint8Array) {
			arrivals.set(data, performance.now());
			return handle.call(this, data);
		};
		// A private method in its types: the document's `update` listener, bound when a document is made.
		const documents = Document.prototype as unknown as { handleUpdate(u: Uint8Array, o: unknown): Document };
		const integrate = documents.handleUpdate;
		documents.handleUpdate = function (this: Document, update: Uint8Array, origin: unknown) {
			const connection = (origin as { connection?: object } | null)?.connection;
			const stamps = connection ? current.get(connection) : undefined;
			if (stamps) {
				stamps.integrated = performance.now();
				const waiting = unsent.get(this) ?? [];
				unsent.set(this, waiting);
				waiting.push(stamps);
			}
			return integrate.call(this, update, origin);
		};
		const relay = (documents as unknown as { broadcastUpdate(u: Uint8Array, o?: unknown): void })
			.broadcastUpdate;
		(documents as unknown as { broadcastUpdate: typeof relay }).broadcastUpdate = function (
			this: Document,
			update: Uint8Array,
			origin?: unknown,
		) {
			relay.call(this, update, origin);
			const sent = performance.now();
			for (const stamps of unsent.get(this) ?? []) {
				stamps.relayed = sent;
				unwritten.push(stamps);
				if (stamps.sqlDone !== undefined) done?.push(stamps);
			}
			unsent.delete(this);
		};
		uncorkObservers.push(() => {
			if (unwritten.length === 0) return;
			const written = performance.now();
			for (const stamps of unwritten) stamps.written = written;
			unwritten = [];
		});
	}
	const { durable, db } = parts;
	const append = durable.append.bind(durable);
	durable.append = (entry) => {
		const stamps = entry.span ? spanStamps.get(entry.span) : undefined;
		if (!stamps) return append(entry);
		stamps.queued = performance.now();
		queued.push(stamps);
		return append(entry).then(() => {
			stamps.durable = performance.now();
		});
	};
	const query = db.query.bind(db);
	db.query = ((sql: string, params?: unknown[]) => {
		if (!/chat_(checked|durable)_append/.test(sql)) return query(sql, params);
		const batch = queued;
		queued = [];
		const sent = performance.now();
		for (const stamps of batch) stamps.sql = sent;
		return query(sql, params).finally(() => {
			const answered = performance.now();
			for (const stamps of batch) stamps.sqlDone = answered;
		});
	}) as typeof db.query;

	const stamp = (stage: Stage) => (payload: beforeSyncPayload) => {
		if (!carriesUpdate(payload)) return Promise.resolve();
		const stamps = current.get(payload.connection);
		if (stamps) stamps[stage] = performance.now();
		return Promise.resolve();
	};
	return {
		first: {
			extensionName: 'stage-clock-first',
			beforeHandleMessage: async ({ connection, update }) => {
				const arrive = arrivals.get(update);
				current.set(connection, arrive === undefined ? {} : { arrive });
			},
			beforeSync: stamp('sync'),
			afterHandleMessage: async ({ connection }) => {
				const stamps = current.get(connection);
				current.delete(connection);
				if (stamps?.hooks !== undefined) stamps.applied = performance.now();
			},
		},
		afterValidation: {
			extensionName: 'stage-clock-judged',
			beforeSync: async (payload) => {
				await stamp('judged')(payload);
				// DurableAppend finds the update's span here: the durable log's entry carries it.
				const judged = parts.rooms.judged.get(payload);
				const stamps = current.get(payload.connection);
				if (judged && stamps) spanStamps.set(judged.span, stamps);
			},
		},
		last: { extensionName: 'stage-clock-last', beforeSync: stamp('hooks') },
	};
}

/** Writes what each update spent between consecutive stages, and in all, into `dir` (bench/stages.ts). */
export function writeStageReport(dir: string): string {
	const pairs: [Stage, Stage][] = stages.slice(1).map((s, i) => [stages[i] as Stage, s]);
	pairs.push(['arrive', 'relayed'], ['sqlDone', 'written'], ['arrive', 'written']);
	const updates = done?.samples() ?? [];
	const stretches = Object.fromEntries(
		pairs.map(([from, to]) => [`${from} → ${to}`, updates.map((s) => (s[to] ?? NaN) - (s[from] ?? NaN))]),
	);
	return writeStages(dir, stretches);
}

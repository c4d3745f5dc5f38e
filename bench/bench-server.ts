/**
 * The real server as the benchmarks start it: `bench/validation-server.ts` with validation on (the shipped
 * validator) or off (BENCH_VALIDATION=off: events are read from the update for the mirror and nothing is
 * checked), and `bench/load.ts` with BENCH_RELAY=before-commit (the relay-before-commit experiment: see
 * docs/benchmarks.md). BENCH_HOCUSPOCUS='{"option":value}' overrides Hocuspocus options before any room opens
 * (`{"scratchAwareness":true}` measures the server without that patch's option: see docs/benchmarks.md), and
 * BENCH_STAGES=<dir> times each update through the server's stages (bench/stage-clock.ts), and BENCH_SQL runs one
 * statement after the migrations (`ALTER INDEX messages_tsv_idx SET (fastupdate = on)` measures the database as it
 * was before migrations/0015), or with `@<file>` the statement in that file
 * (`@migrations/0014_checked_append_one_statement.sql`: the checked append as it was before 0016). Only the
 * benchmarks start it; `npm start` always validates and relays after the commit.
 */
import fs from 'node:fs';
import * as Y from 'yjs';
import { startApp } from '../server/app.ts';
import { configuredValidation, type UpdatePath } from '../server/collab/collab.ts';
import { DurableAppend } from '../server/collab/durable-append.ts';
import { parseUpdate } from '../server/collab/update-parser.ts';
import type { judgeUpdate } from '../server/collab/validation.ts';
import { parseConfig } from '../server/config.ts';
import { createLogger } from '../server/log.ts';
import type { RoomEvent } from '../src/lib/protocol/events.ts';
import { RelayFirstAppend } from './relay-first-append.ts';
import { stageClock, writeStageReport } from './stage-clock.ts';

const noValidation: typeof judgeUpdate = (update, { doc }) => {
	const events: RoomEvent[] = [];
	const structIds: string[] = [];
	const knownKeys: string[] = [];
	for (const struct of parseUpdate(update).structs) {
		if (struct.type !== 'item' || struct.parentSub === null) continue;
		if (struct.id.clock < Y.getState(doc.store, struct.id.client)) knownKeys.push(struct.parentSub);
		else {
			events.push(struct.values[0] as RoomEvent);
			structIds.push(`${struct.id.client}:${struct.id.clock}`);
		}
	}
	return { events, structIds, knownKeys, inFlightKeys: [], clients: [] };
};

const stagesDir = process.env.BENCH_STAGES;

/** The standard update path with the validator or the append swapped as the benchmark asks. */
const updatePath: UpdatePath = (parts) => {
	const validation = configuredValidation(
		parts,
		process.env.BENCH_VALIDATION === 'off' ? noValidation : undefined,
	);
	const append =
		process.env.BENCH_RELAY === 'before-commit' ? new RelayFirstAppend(parts) : new DurableAppend(parts);
	if (!stagesDir) return [validation, append];
	const clock = stageClock(parts);
	return [clock.first, validation, clock.afterValidation, append, clock.last];
};

const config = parseConfig(process.env);
const app = await startApp(config, createLogger(config.LOG_LEVEL), { updatePath });
const benchSql = process.env.BENCH_SQL?.startsWith('@')
	? fs.readFileSync(process.env.BENCH_SQL.slice(1), 'utf8')
	: process.env.BENCH_SQL;
if (benchSql) await app.db.query(benchSql);
if (process.env.BENCH_HOCUSPOCUS)
	Object.assign(app.collab.hocuspocus.configuration, JSON.parse(process.env.BENCH_HOCUSPOCUS) as object);
process.once('SIGTERM', () => {
	if (stagesDir) writeStageReport(stagesDir);
	void app.stop().then(() => process.exit(0));
});

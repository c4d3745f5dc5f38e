import pg from 'pg';
import type { Logger } from 'pino';
import type { Db, Queryable, QueryOptions, QueryResult } from './types.ts';

/**
 * Bounds on every round trip to Postgres (docs/operations.md, "Timeouts"). A node cut off from its database (a
 * network black hole, a frozen server) refuses within seconds, retryably, instead of hanging: clients then
 * reconnect, to a healthy node if there is one.
 */
export const postgresTimeouts = {
	/** Waiting for a pooled connection, or for a new one to be established. */
	connectMs: 5_000,
	/** The client stops waiting for an answer (the only bound when packets vanish). */
	queryMs: 10_000,
	/** Postgres cancels a statement that runs longer (a runaway query holds no connection for ever). */
	statementMs: 10_000,
	/** Postgres ends a session left idle inside a transaction. */
	idleInTransactionMs: 30_000,
	/** TCP keepalive probes start after this much silence. */
	keepAliveMs: 10_000,
} as const;

/** Errors after which a connection cannot be trusted with a ROLLBACK: it may never answer. */
function connectionBroken(error: unknown): boolean {
	const message = (error as Error | undefined)?.message ?? '';
	return /Query read timeout|Connection terminated|timeout exceeded when trying to connect/i.test(message);
}

async function query<Row>(
	client: pg.Pool | pg.ClientBase,
	sql: string,
	params?: unknown[],
	options?: QueryOptions,
) {
	const result = await (options?.prepared
		? client.query({ name: options.prepared, text: sql, values: params })
		: client.query(sql, params as unknown[]));
	return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 } satisfies QueryResult<Row>;
}

/** One connection (in a transaction) as a Queryable. */
function queryable(client: pg.ClientBase): Queryable {
	return {
		query: (sql, params, options) => query(client, sql, params, options),
		async exec(sql) {
			await client.query(sql);
		},
	};
}

/** A node-postgres Pool behind the Db interface. */
export function openPostgres(url: string, poolSize: number, log: Logger): Db {
	const pool = new pg.Pool({
		connectionString: url,
		max: poolSize,
		connectionTimeoutMillis: postgresTimeouts.connectMs,
		idleTimeoutMillis: 30_000,
		query_timeout: postgresTimeouts.queryMs,
		statement_timeout: postgresTimeouts.statementMs,
		idle_in_transaction_session_timeout: postgresTimeouts.idleInTransactionMs,
		keepAlive: true,
		keepAliveInitialDelayMillis: postgresTimeouts.keepAliveMs,
	});
	// An idle client losing its connection (database restart) must not crash the process;
	// the pool drops it and the next query opens a new one.
	pool.on('error', (error) => log.warn({ err: error }, 'postgres pool: idle client error'));

	return {
		kind: 'postgres',
		query: (sql, params, options) => query(pool, sql, params, options),
		async exec(sql) {
			await pool.query(sql);
		},
		async transaction(fn, options) {
			if (options?.unbounded) {
				// Its own connection, without the pool's timeouts; ending the session rolls back whatever it left.
				const client = new pg.Client({
					connectionString: url,
					connectionTimeoutMillis: postgresTimeouts.connectMs,
					keepAlive: true,
				});
				await client.connect();
				try {
					return await inTransaction(client, fn);
				} finally {
					await client.end().catch(() => undefined);
				}
			}
			const client = await pool.connect();
			// A checked-out client that loses its connection emits 'error'; without a listener that would crash
			// the process. The failed query rejects as well, which is what the caller sees.
			const onError = (error: Error) => log.warn({ err: error }, 'postgres connection lost in a transaction');
			client.on('error', onError);
			let failed = false;
			try {
				return await inTransaction(client, fn);
			} catch (error) {
				failed = true;
				throw error;
			} finally {
				client.off('error', onError);
				// A client whose transaction failed may be broken: discard it rather than reuse it.
				client.release(failed);
			}
		},
		async ping() {
			// Ready means able to store: a database that answers but refuses writes (read-only, a standby) is not.
			const { rows } = await pool.query<{ read_only: string; recovery: boolean }>(
				"SELECT current_setting('transaction_read_only') AS read_only, pg_is_in_recovery() AS recovery",
			);
			if (rows[0]?.read_only === 'on' || rows[0]?.recovery)
				throw new Error('the database is read-only: it refuses writes');
		},
		async close() {
			await pool.end();
		},
	};
}

/** BEGIN, `fn`, COMMIT on one connection; ROLLBACK when `fn` or the COMMIT fails. */
async function inTransaction<T>(client: pg.ClientBase, fn: (tx: Queryable) => Promise<T>): Promise<T> {
	try {
		await client.query('BEGIN');
		const result = await fn(queryable(client));
		await client.query('COMMIT');
		return result;
	} catch (error) {
		// A connection that timed out may never answer again: it is discarded without waiting on a ROLLBACK
		// (Postgres rolls the transaction back when the session ends).
		if (!connectionBroken(error))
			await client.query('ROLLBACK').catch(() => {
				// The connection is already broken; discarding it rolls back.
			});
		throw error;
	}
}

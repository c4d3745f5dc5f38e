import pg from 'pg';
import type { Logger } from 'pino';
import type { Db, Queryable, QueryResult } from './types.ts';

/** A node-postgres Pool behind the Db interface. */
export function openPostgres(url: string, poolSize: number, log: Logger): Db {
	const pool = new pg.Pool({
		connectionString: url,
		max: poolSize,
		connectionTimeoutMillis: 5_000,
		idleTimeoutMillis: 30_000,
	});
	// An idle client losing its connection (database restart) must not crash the process;
	// the pool drops it and the next query opens a new one.
	pool.on('error', (error) => log.warn({ err: error }, 'postgres pool: idle client error'));

	const query = async <Row>(client: pg.Pool | pg.PoolClient, sql: string, params?: unknown[]) => {
		const result = await client.query(sql, params as unknown[]);
		return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 } satisfies QueryResult<Row>;
	};

	return {
		kind: 'postgres',
		query: (sql, params) => query(pool, sql, params),
		async exec(sql) {
			await pool.query(sql);
		},
		async transaction(fn) {
			const client = await pool.connect();
			// A checked-out client that loses its connection emits 'error'; without a listener that would crash
			// the process. The failed query rejects as well, which is what the caller sees.
			const onError = (error: Error) => log.warn({ err: error }, 'postgres connection lost in a transaction');
			client.on('error', onError);
			let failed = false;
			try {
				await client.query('BEGIN');
				const tx: Queryable = {
					query: (sql, params) => query(client, sql, params),
					async exec(sql) {
						await client.query(sql);
					},
				};
				const result = await fn(tx);
				await client.query('COMMIT');
				return result;
			} catch (error) {
				failed = true;
				await client.query('ROLLBACK').catch(() => {
					// The connection is already broken; releasing it as failed discards it.
				});
				throw error;
			} finally {
				client.off('error', onError);
				// A client whose transaction failed may be broken: discard it rather than reuse it.
				client.release(failed);
			}
		},
		async ping() {
			await pool.query('SELECT 1');
		},
		async close() {
			await pool.end();
		},
	};
}

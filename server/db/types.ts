/** The one small query interface the server uses, over node-postgres or embedded PGlite. */
export interface QueryResult<Row> {
	rows: Row[];
	rowCount: number;
}

export interface QueryOptions {
	/**
	 * Names the statement so that Postgres parses and plans it once per connection and later calls only bind and
	 * run it (node-postgres keeps the name per connection). For the hot statements with a fixed text; PGlite runs
	 * in-process and ignores it.
	 */
	prepared?: string;
}

export interface Queryable {
	query<Row = Record<string, unknown>>(
		sql: string,
		params?: unknown[],
		options?: QueryOptions,
	): Promise<QueryResult<Row>>;
	/** Runs a script of several statements without parameters (migrations). */
	exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
	readonly kind: 'pglite' | 'postgres';
	/**
	 * Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. `unbounded` lifts the
	 * per-query timeouts (migrations: an index build or a wait for another node's migration lock may take long).
	 */
	transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: { unbounded?: boolean }): Promise<T>;
	/** Resolves when the database answers a trivial query. */
	ping(): Promise<void>;
	close(): Promise<void>;
}

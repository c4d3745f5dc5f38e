import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { openPglite } from './pglite.ts';
import { openPostgres } from './postgres.ts';
import type { Db } from './types.ts';

export type { Db, Queryable } from './types.ts';

/** Postgres when DATABASE_URL is set, embedded PGlite under DATA_DIR otherwise. */
export async function openDb(config: Config, log: Logger): Promise<Db> {
	if (config.DATABASE_URL) return openPostgres(config.DATABASE_URL, config.DATABASE_POOL_SIZE, log);
	return openPglite(config.DATA_DIR);
}

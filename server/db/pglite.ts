import fs from 'node:fs';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import type { Db, Queryable, QueryResult } from './types.ts';
import { isRunning } from '../pid.ts';

export class DataDirLockedError extends Error {
	readonly code = 'data_dir_locked';
}

/**
 * Takes an exclusive lock on DATA_DIR for this process: a second server on the same directory would
 * corrupt the embedded database. A lock left by a process that no longer runs is taken over.
 */
function lockDataDir(dataDir: string): () => void {
	fs.mkdirSync(dataDir, { recursive: true });
	const lockPath = path.join(dataDir, 'server.lock');
	for (let attempt = 0; attempt < 2; attempt++) {
		try {
			fs.writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
			return () => {
				try {
					if (fs.readFileSync(lockPath, 'utf8') === String(process.pid)) fs.unlinkSync(lockPath);
				} catch {
					// Already gone: nothing to release.
				}
			};
		} catch (error) {
			if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
			const owner = Number.parseInt(fs.readFileSync(lockPath, 'utf8'), 10);
			if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isRunning(owner)) {
				throw new DataDirLockedError(
					`DATA_DIR ${dataDir} is in use by another server (pid ${owner}). ` +
						'Stop it first, or give this one its own DATA_DIR, or set DATABASE_URL to share a Postgres server.',
				);
			}
			fs.rmSync(lockPath, { force: true });
		}
	}
	throw new DataDirLockedError(`could not lock DATA_DIR ${dataDir}`);
}

/** Embedded PGlite persisted under `<dataDir>/pglite`, behind the Db interface. */
export async function openPglite(dataDir: string): Promise<Db> {
	const unlock = lockDataDir(dataDir);
	let db: PGlite;
	try {
		// Loaded here, not at start: a node on Postgres never holds the embedded database's code (7 MB of RSS).
		const { PGlite } = await import('@electric-sql/pglite');
		db = await PGlite.create(path.join(dataDir, 'pglite'));
	} catch (error) {
		unlock();
		throw error;
	}

	const wrap = (target: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
		async exec(sql: string) {
			await target.exec(sql);
		},
		async query<Row>(sql: string, params?: unknown[]) {
			const result = await target.query<Row>(sql, params);
			return {
				rows: result.rows,
				rowCount: result.affectedRows ?? result.rows.length,
			} satisfies QueryResult<Row>;
		},
	});
	const root = wrap(db);

	return {
		kind: 'pglite',
		query: root.query,
		exec: root.exec,
		transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
		async ping() {
			await db.query('SELECT 1');
		},
		async close() {
			try {
				await db.close();
			} finally {
				unlock();
			}
		},
	};
}

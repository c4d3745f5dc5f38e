import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from './types.ts';

export const migrationsDir = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** Any constant works; it only has to be the same on every node. */
const MIGRATION_LOCK_KEY = 4_242_001;

export class MigrationError extends Error {
	readonly code = 'migration_failed';
}

interface Migration {
	name: string;
	sql: string;
	checksum: string;
}

async function readMigrations(dir: string): Promise<Migration[]> {
	const files = (await fs.readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
	return Promise.all(
		files.map(async (name) => {
			const sql = await fs.readFile(path.join(dir, name), 'utf8');
			return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
		}),
	);
}

/**
 * Applies the pending numbered migrations in one transaction under an advisory lock, so two nodes
 * booting at once apply each file exactly once. Returns the names it applied.
 * A file that changed after it was applied stops boot: migrations are forward-only.
 */
export async function migrate(db: Db, dir = migrationsDir): Promise<string[]> {
	const migrations = await readMigrations(dir);
	return db.transaction(
		async (tx) => {
			await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
			await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
			name text PRIMARY KEY,
			checksum text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`);
			const applied = new Map(
				(
					await tx.query<{ name: string; checksum: string }>('SELECT name, checksum FROM schema_migrations')
				).rows.map((r) => [r.name, r.checksum]),
			);
			const done: string[] = [];
			for (const migration of migrations) {
				const checksum = applied.get(migration.name);
				if (checksum !== undefined) {
					if (checksum !== migration.checksum) {
						throw new MigrationError(
							`migration ${migration.name} was changed after it was applied; add a new migration instead`,
						);
					}
					continue;
				}
				try {
					await tx.exec(migration.sql);
				} catch (error) {
					throw new MigrationError(`migration ${migration.name} failed: ${(error as Error).message}`);
				}
				await tx.query('INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)', [
					migration.name,
					migration.checksum,
				]);
				done.push(migration.name);
			}
			return done;
		},
		// An index build, or waiting for another node's migrations, may outlast the per-query timeouts.
		{ unbounded: true },
	);
}

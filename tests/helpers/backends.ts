import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, inject, it } from 'vitest';
import { longRun } from './long-run.ts';

export type Backend = 'pglite' | 'postgres';

/**
 * Runs the same suite against every database backend: embedded PGlite always, real Postgres when
 * the global setup found it (CI requires it). One suite, two stores.
 */
export function describeEachBackend(name: string, suite: (backend: Backend) => void) {
	const pgUrl = inject('postgresAdminUrl');
	describe.each(['pglite', 'postgres'] as const)(`${name} [%s]`, (backend) => {
		if (backend === 'postgres' && !pgUrl) {
			describe.skip('needs Postgres (not reachable; see the warning at the start of the run)', () => {});
			return;
		}
		suite(backend);
	});
}

/**
 * For the long walks and fuzzes (minutes per backend): `npm test` runs them on `usual` only, to keep a CI run
 * within its time; `npm run test:long` runs them on both, like the rest.
 */
export function describeLongOnBackends(name: string, usual: Backend, suite: (backend: Backend) => void) {
	if (longRun) return describeEachBackend(name, suite);
	describe(`${name} [${usual}]`, () => {
		if (usual === 'postgres' && !inject('postgresAdminUrl')) {
			describe.skip('needs Postgres (not reachable; see the warning at the start of the run)', () => {});
			return;
		}
		suite(usual);
	});
	describe(`${name} [${usual === 'pglite' ? 'postgres' : 'pglite'}]`, () => {
		it.skip('runs with `npm run test:long`', () => {});
	});
}

/** Creates a uniquely named database on the test Postgres server; `drop` removes it. */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
	const adminUrl = inject('postgresAdminUrl');
	if (!adminUrl) throw new Error('Postgres is not available for this test');
	const name = `chat_test_${randomBytes(6).toString('hex')}`;
	const admin = new pg.Client({ connectionString: adminUrl });
	await admin.connect();
	try {
		await admin.query(`CREATE DATABASE ${name}`);
	} finally {
		await admin.end();
	}
	const url = new URL(adminUrl);
	url.pathname = `/${name}`;
	return {
		url: url.toString(),
		async drop() {
			const c = new pg.Client({ connectionString: adminUrl });
			await c.connect();
			try {
				await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
			} finally {
				await c.end();
			}
		},
	};
}

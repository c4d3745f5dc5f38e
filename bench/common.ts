import pg from 'pg';
import type { Page } from 'playwright-core';

/** The Postgres the benchmarks create their throwaway databases in. */
export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Runs one statement as the admin (CREATE / DROP DATABASE). */
export async function admin<T extends pg.QueryResultRow = pg.QueryResultRow>(
	sql: string,
	values: unknown[] = [],
): Promise<T[]> {
	const client = new pg.Client({ connectionString: adminUrl });
	await client.connect();
	try {
		return (await client.query<T>(sql, values)).rows;
	} finally {
		await client.end();
	}
}

/** What Postgres did so far: one database's transactions, and the WAL the whole cluster wrote and flushed. */
export interface DatabaseCounters {
	commits: number;
	walBytes: number;
	/** Full-page images in the WAL: the first change of a page after each checkpoint writes all 8 KB of it. */
	fullPages: number;
	/** Times the WAL was flushed to disk (a commit's wait, or the WAL writer's). */
	walSyncs: number;
}

/** Reads `DatabaseCounters` (pg_stat_wal: Postgres 14 and later); the WAL is the cluster's, not one database's. */
export async function databaseCounters(name: string): Promise<DatabaseCounters> {
	const [row] = await admin<{ commits: string; bytes: string; fpi: string; syncs: string }>(
		`SELECT d.xact_commit::text AS commits, w.wal_bytes::text AS bytes, w.wal_fpi::text AS fpi,
			w.wal_sync::text AS syncs
		 FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = $1`,
		[name],
	);
	if (!row) throw new Error(`no statistics for database ${name}`);
	return {
		commits: Number(row.commits),
		walBytes: Number(row.bytes),
		fullPages: Number(row.fpi),
		walSyncs: Number(row.syncs),
	};
}

/** A JSON POST to the app's API, failing loudly on anything but 2xx. */
export async function post<T>(base: string, pathname: string, body: unknown, token?: string): Promise<T> {
	const res = await fetch(base + pathname, {
		method: 'POST',
		headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
		body: JSON.stringify(body),
	});
	if (!res.ok) throw new Error(`POST ${pathname}: ${res.status} ${await res.text()}`);
	return (await res.json()) as T;
}

export function median(values: number[]): number {
	const sorted = [...values].sort((a, b) => a - b);
	const mid = Math.floor(sorted.length / 2);
	return sorted.length % 2
		? (sorted[mid] as number)
		: ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Navigates `page` to `url` and returns the time from navigation start until every message of `clientMsgIds`
 * is in the DOM, in ms (the page's own clock, checked on every animation frame).
 */
export async function timeToMessages(page: Page, url: string, clientMsgIds: string[]): Promise<number> {
	await page.goto(url);
	const handle = await page.waitForFunction(
		(ids) => {
			const w = window as unknown as { renderedAt?: number };
			if (ids.every((id) => document.querySelector(`[data-client-msg-id="${id}"]`)))
				w.renderedAt ??= performance.now();
			return w.renderedAt;
		},
		clientMsgIds,
		{ polling: 'raf', timeout: 180_000 },
	);
	return (await handle.jsonValue()) as number;
}

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

import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { auditServerLogs, serverLogDir } from './log-audit.ts';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
	export interface ProvidedContext {
		/** Admin URL of a reachable Postgres server, or null when none is (tests that need it skip). */
		postgresAdminUrl: string | null;
		/** URL of a reachable Redis server, or null. */
		redisUrl: string | null;
		/** Unique per `vitest run`: work done once per run (the e2e build) is keyed on it. */
		runId: string;
	}
}

const defaultUrl = 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Finds the services the suite needs. In CI (CI=true) a missing Postgres fails the run; on a
 * developer's machine the suite says loudly what it skips.
 */
export default async function setup(project: TestProject) {
	const url = process.env.TEST_DATABASE_URL ?? defaultUrl;
	const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
	let reachable = false;
	try {
		await client.connect();
		await client.query('SELECT 1');
		reachable = true;
	} catch (error) {
		const message = `Postgres is not reachable at ${url.replace(/\/\/[^@]*@/, '//***@')}: ${(error as Error).message}`;
		if (process.env.CI)
			throw new Error(`${message}. CI needs it: the Postgres tests cannot be skipped there.`, {
				cause: error,
			});
		console.warn(
			`\n!!! ${message}\n!!! SKIPPING every test that runs against real Postgres. Set TEST_DATABASE_URL to run them.\n`,
		);
	} finally {
		await client.end().catch(() => {});
	}
	project.provide('postgresAdminUrl', reachable ? url : null);
	project.provide('redisUrl', await findRedis());
	project.provide('runId', randomUUID());

	// Every server of the run logs into one directory; at the end no secret may be found in it (issue 8).
	fs.rmSync(serverLogDir, { recursive: true, force: true });
	fs.mkdirSync(serverLogDir, { recursive: true });
	process.env.TEST_SERVER_LOG_DIR = serverLogDir;
	return () => {
		const { files, bytes, findings } = auditServerLogs();
		if (findings.length > 0) {
			throw new Error(
				`The server logs of this run hold secrets (content, tokens or passwords), ${findings.length} times:\n` +
					findings.slice(0, 30).join('\n'),
			);
		}
		console.log(
			`Server logs audited: ${files} files, ${(bytes / 2 ** 20).toFixed(1)} MB, no message content, token or password.`,
		);
	};
}

async function findRedis(): Promise<string | null> {
	const url = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
	const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
	redis.on('error', () => {
		// Reported below.
	});
	try {
		await redis.connect();
		await redis.ping();
		return url;
	} catch (error) {
		const message = `Redis is not reachable at ${url}: ${(error as Error).message}`;
		if (process.env.CI) {
			throw new Error(`${message}. CI needs it: the Redis tests cannot be skipped there.`, { cause: error });
		}
		console.warn(
			`\n!!! ${message}\n!!! SKIPPING every test that needs Redis. Set TEST_REDIS_URL to run them.\n`,
		);
		return null;
	} finally {
		redis.disconnect();
	}
}

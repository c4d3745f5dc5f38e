import { ConfigError, parseConfig } from '../config.ts';
import { createLogger } from '../log.ts';
import { openDb } from './index.ts';
import { migrate } from './migrate.ts';

/** `npm run migrate`: applies pending migrations to DATABASE_URL, or to the embedded database in DATA_DIR. */
try {
	const config = parseConfig(process.env);
	const log = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL);
	const db = await openDb(config, log);
	try {
		const applied = await migrate(db);
		process.stdout.write(
			applied.length
				? `Applied ${applied.length} migration(s): ${applied.join(', ')}\n`
				: 'Database is up to date.\n',
		);
	} finally {
		await db.close();
	}
} catch (error) {
	process.stderr.write(
		`${error instanceof ConfigError ? 'Configuration error:\n' : 'Migration failed: '}${(error as Error).message}\n`,
	);
	process.exit(1);
}

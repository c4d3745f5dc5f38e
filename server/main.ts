import { startApp } from './app.ts';
import { ConfigError, parseConfig } from './config.ts';
import { DataDirLockedError } from './db/pglite.ts';
import { MigrationError } from './db/migrate.ts';
import { createLogger } from './log.ts';

let config;
try {
	config = parseConfig(process.env);
} catch (error) {
	if (error instanceof ConfigError) {
		process.stderr.write(
			`Configuration error, the server did not start:\n${error.message}\nSee .env.example for every variable.\n`,
		);
		process.exit(2);
	}
	throw error;
}

const log = createLogger(config.LOG_LEVEL);

let app;
try {
	app = await startApp(config, log);
} catch (error) {
	if (error instanceof DataDirLockedError || error instanceof MigrationError) {
		log.fatal(error.message);
		process.stderr.write(`${error.message}\n`);
	} else {
		log.fatal({ err: error }, 'server failed to start');
	}
	process.exit(1);
}

const shutdown = (signal: string) => {
	log.info({ signal }, 'signal received');
	const timer = setTimeout(() => {
		log.error('shutdown took too long; exiting');
		process.exit(1);
	}, config.SHUTDOWN_TIMEOUT_MS);
	timer.unref();
	app.stop().then(
		() => process.exit(0),
		(error: unknown) => {
			log.error({ err: error }, 'shutdown failed');
			process.exit(1);
		},
	);
};
process.once('SIGTERM', () => shutdown('SIGTERM'));
process.once('SIGINT', () => shutdown('SIGINT'));

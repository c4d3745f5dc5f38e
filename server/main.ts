import { startApp } from './app.ts';
import { ConfigError, parseConfig } from './config.ts';
import { DataDirLockedError } from './db/pglite.ts';
import { MigrationError } from './db/migrate.ts';
import { createLogger, routeConsole } from './log.ts';

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
routeConsole(log);

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
	// The deadline is armed before anything else, so that even a failing log write cannot keep the
	// process alive past it.
	setTimeout(() => {
		process.stderr.write('shutdown took too long; exiting\n');
		process.exit(1);
	}, config.SHUTDOWN_TIMEOUT_MS).unref();
	try {
		log.info({ signal }, 'signal received');
	} catch {
		// stdout may be gone (the parent died); shutting down matters more than saying so.
	}
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

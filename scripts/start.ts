/**
 * `npm start`: makes sure the client is built (only when its sources changed; see scripts/build.ts), then runs the
 * server in this process. With STATIC_DIR set, that folder is served as it is and nothing is built.
 */
import { BuildError, ensureClientBuild } from './build.ts';

if (!process.env.STATIC_DIR) {
	try {
		process.env.STATIC_DIR = await ensureClientBuild({ log: (line) => process.stderr.write(`${line}\n`) });
	} catch (error) {
		if (!(error instanceof BuildError)) throw error;
		process.stderr.write(`error: ${error.message}\n`);
		process.exit(1);
	}
}
await import('../server/main.ts');

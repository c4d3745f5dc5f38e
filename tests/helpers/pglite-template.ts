import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { migrate, migrationsDir } from '../../server/db/migrate.ts';
import { openPglite } from '../../server/db/pglite.ts';

/**
 * A fresh PGlite database costs seconds of CPU (initdb, then every migration: about 6 s here) and the suite starts
 * a hundred of them. The same empty, migrated database is made once per set of migrations and PGlite version, and
 * copied (a quarter of a second) into each test's DATA_DIR. The server then opens it as it opens any existing
 * database, checks the migrations and finds nothing to do.
 *
 * Tests that are about a first start (`npm start` on an empty DATA_DIR, `npm run migrate`, the export CLI on a
 * database never migrated) do not use it.
 */

const pgliteVersion = (
	JSON.parse(
		fs.readFileSync(new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url), 'utf8'),
	) as { version: string }
).version;

function templateKey(): string {
	const hash = createHash('sha256').update(`pglite ${pgliteVersion}\0`);
	for (const name of fs.readdirSync(migrationsDir).sort())
		hash
			.update(`${name}\0`)
			.update(fs.readFileSync(path.join(migrationsDir, name)))
			.update('\0');
	return hash.digest('hex').slice(0, 16);
}

let template: Promise<string> | undefined;

/** The template's `pglite` directory, made if this machine does not have it yet. */
function pgliteTemplate(): Promise<string> {
	return (template ??= (async () => {
		const root = path.join(os.tmpdir(), `chat-pglite-template-${templateKey()}`);
		const ready = path.join(root, 'pglite');
		if (fs.existsSync(path.join(root, 'complete'))) return ready;
		// Built aside and renamed into place: several test workers may build it at once, one rename wins, and a
		// worker never copies a half-made template.
		const building = `${root}.${process.pid}.${randomBytes(4).toString('hex')}`;
		const db = await openPglite(building);
		try {
			await migrate(db);
		} finally {
			await db.close();
		}
		fs.rmSync(path.join(building, 'server.lock'), { force: true });
		fs.writeFileSync(path.join(building, 'complete'), '');
		try {
			fs.renameSync(building, root);
		} catch {
			// Another worker's template got there first; it is the same database.
			fs.rmSync(building, { recursive: true, force: true });
		}
		if (!fs.existsSync(path.join(root, 'complete')))
			throw new Error(`the PGlite template at ${root} is incomplete: remove it and run again`);
		return ready;
	})());
}

/** Puts an empty, migrated PGlite database into `dataDir` (which must not hold one yet). Returns `dataDir`. */
export async function seedPglite(dataDir: string): Promise<string> {
	fs.cpSync(await pgliteTemplate(), path.join(dataDir, 'pglite'), { recursive: true });
	return dataDir;
}

/**
 * Runs a project script on the Node this project needs: `node scripts/with-node.mjs <file> [args…]`.
 *
 * Every npm script goes through here, so `npm install && npm start` works on whatever Node a machine has. On
 * Node 24 or later the file runs in this very process (no extra process, signals reach it directly). On an older
 * Node, Node 24 is fetched once from the npm registry (the package `node-<os>-<arch>@24`, the way `.ci/run` does)
 * into the git-ignored `.tools/node24`, and the file runs there as a child that receives our signals.
 *
 * A `.env` file in the working directory is loaded first; variables already set in the environment win.
 *
 * This file is plain JavaScript on purpose: it must parse on the oldest Node a user may have.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const NEEDED_MAJOR = 24;
const root = fileURLToPath(new URL('..', import.meta.url));
const toolsDir = path.join(root, '.tools');
const nodeDir = path.join(toolsDir, `node${NEEDED_MAJOR}`);
const nodeBin = path.join(nodeDir, 'bin', process.platform === 'win32' ? 'node.exe' : 'node');

/**
 * Ends the process with one line, never a stack trace.
 * @param {string} message
 * @returns {never}
 */
function fail(message) {
	process.stderr.write(`error: ${message}\n`);
	process.exit(1);
}

const [given, ...args] = process.argv.slice(2);
const file = given ?? fail('usage: node scripts/with-node.mjs <file> [args…]');

const major = Number(process.versions.node.split('.')[0]);
if (major >= NEEDED_MAJOR) {
	loadEnvFile();
	// The script sees the argv it would see when run directly: [node, file, ...args].
	process.argv.splice(1, 2, path.resolve(file));
	await import(pathToFileURL(path.resolve(file)).href);
} else {
	runOnProvisionedNode();
}

function loadEnvFile() {
	const envFile = path.resolve('.env');
	if (!fs.existsSync(envFile)) return;
	try {
		// Like `node --env-file`: a variable already in the environment is not overwritten.
		process.loadEnvFile(envFile);
	} catch (error) {
		fail(`${envFile} could not be read: ${error instanceof Error ? error.message : String(error)}`);
	}
}

function runOnProvisionedNode() {
	if (!fs.existsSync(nodeBin)) provision();
	// In a process group of its own, so that a Ctrl-C in a terminal reaches it once (from us), not twice.
	// Node's own flags given to us (`node --max-semi-space-size=16 scripts/with-node.mjs …`, as `npm start` does) are
	// meant for the Node that runs the file.
	const child = spawn(nodeBin, [...process.execArgv, fileURLToPath(import.meta.url), file, ...args], {
		stdio: 'inherit',
		detached: process.platform !== 'win32',
	});
	for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
		process.on(signal, () => child.kill(signal));
	}
	child.on('error', (/** @type {Error} */ error) =>
		fail(`${nodeBin} could not be started: ${error.message}`),
	);
	child.on('exit', (code, signal) => {
		if (signal) {
			process.removeAllListeners(signal);
			process.kill(process.pid, signal);
		} else process.exit(code ?? 1);
	});
}

/** Fetches Node into `.tools/node24`, atomically: two scripts starting at once cannot leave half a Node there. */
function provision() {
	/** @type {Record<string, string>} */
	const platforms = { win32: 'win', darwin: 'darwin', linux: 'linux' };
	const platform = platforms[process.platform];
	const pkg = `node-${platform ?? process.platform}-${process.arch}@${NEEDED_MAJOR}`;
	process.stderr.write(
		`Node ${process.versions.node} is older than this project needs (${NEEDED_MAJOR}); ` +
			`fetching ${pkg} into .tools/node${NEEDED_MAJOR} (once)…\n`,
	);
	fs.mkdirSync(toolsDir, { recursive: true });
	const staging = fs.mkdtempSync(path.join(toolsDir, `node${NEEDED_MAJOR}-`));
	try {
		// The npm that runs this script, when there is one; else the one on PATH.
		const npm = process.env.npm_execpath;
		const command = npm ? process.execPath : process.platform === 'win32' ? 'npm.cmd' : 'npm';
		const tarball = execFileSync(command, [...(npm ? [npm] : []), 'pack', '--silent', pkg], {
			cwd: staging,
			encoding: 'utf8',
			stdio: ['ignore', 'pipe', 'pipe'],
		}).trim();
		execFileSync('tar', ['-xzf', tarball, '--strip-components=1'], { cwd: staging, stdio: 'pipe' });
		fs.rmSync(path.join(staging, tarball));
		const version = execFileSync(path.join(staging, 'bin', path.basename(nodeBin)), ['--version'], {
			encoding: 'utf8',
		}).trim();
		try {
			fs.renameSync(staging, nodeDir);
			process.stderr.write(`Node ${version} is in .tools/node${NEEDED_MAJOR}.\n`);
		} catch (error) {
			// Another script provisioned it first: use theirs.
			if (!fs.existsSync(nodeBin)) throw error;
			fs.rmSync(staging, { recursive: true, force: true });
		}
	} catch (error) {
		fs.rmSync(staging, { recursive: true, force: true });
		const detail = error instanceof Error && 'stderr' in error ? String(error.stderr).trim() : String(error);
		fail(
			`could not fetch Node ${NEEDED_MAJOR} (${pkg}): ${detail.split('\n').pop() || 'unknown error'}. ` +
				`Install Node ${NEEDED_MAJOR} (see .nvmrc) and run the command again.`,
		);
	}
}

/**
 * The client build: `npm run build` (this file), `npm start` and the browser tests all go through
 * `ensureClientBuild`.
 *
 * A build is named by a content hash of its inputs and lives in `.builds/<hash>/`, which is complete before it gets
 * that name (Vite writes into a staging folder that is renamed at the end). `build` is a symlink to the newest one,
 * switched atomically. So:
 * - a start whose sources have not changed finds its build and skips Vite (about a second instead of 15–40 s);
 * - two builds at once in one checkout take turns under a lock (`.builds/lock`, freed if its owner died) and the
 *   second finds the first one's result;
 * - a server keeps the folder it started with (config resolves the symlink), which is never half written and is
 *   not removed while it is among the newest `KEEP_BUILDS`, so a build made while it runs changes nothing for it
 *   until it restarts.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isRunning } from '../server/pid.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const BUILDS = path.join(root, '.builds');
const LINK = path.join(root, 'build');
const LOCK = path.join(BUILDS, 'lock');
/** Whatever changes the built client. package-lock.json stands for node_modules. */
const INPUTS = ['src', 'static', 'svelte.config.js', 'vite.config.ts', 'package.json', 'package-lock.json'];
const MARKER = '.build.json';
const KEEP_BUILDS = 5;
/** A lock older than this is from a build that hung or whose owner was killed. */
const LOCK_STALE_MS = 10 * 60_000;

export class BuildError extends Error {}

export interface BuildOptions {
	/** The browser tests' build: it exposes the room documents to the page (`__TEST_HOOKS__`). */
	testHooks?: boolean;
	/** Receives one line when a build starts, waits or ends. */
	log?: (line: string) => void;
}

/** The content hash of the client's inputs (file paths and bytes, in a stable order) and the build's kind. */
export function inputsHash({ testHooks = false }: BuildOptions = {}): string {
	const hash = createHash('sha256').update(testHooks ? 'test-hooks\0' : 'production\0');
	const visit = (relative: string) => {
		const full = path.join(root, relative);
		const stat = fs.statSync(full, { throwIfNoEntry: false });
		if (!stat) return;
		if (stat.isDirectory()) {
			for (const entry of fs.readdirSync(full).sort()) visit(path.join(relative, entry));
			return;
		}
		hash.update(`${relative}\0${stat.size}\0`).update(fs.readFileSync(full));
	};
	for (const input of INPUTS) visit(input);
	return hash.digest('hex').slice(0, 16);
}

/**
 * Returns the absolute path of a complete build of the current sources, building it first if there is none.
 * `build` points at the newest production build (never at the tests' build).
 */
export async function ensureClientBuild(options: BuildOptions = {}): Promise<string> {
	const { testHooks = false, log = () => {} } = options;
	const hash = inputsHash(options);
	const dir = path.join(BUILDS, hash);
	if (isComplete(dir)) {
		if (!testHooks) pointLinkAt(hash);
		return dir;
	}
	fs.mkdirSync(BUILDS, { recursive: true });
	const unlock = await lock(log);
	try {
		if (!isComplete(dir)) await build(hash, testHooks, log);
		if (!testHooks) pointLinkAt(hash);
		prune(hash);
	} finally {
		unlock();
	}
	return dir;
}

function isComplete(dir: string): boolean {
	return fs.existsSync(path.join(dir, MARKER));
}

async function build(hash: string, testHooks: boolean, log: (line: string) => void): Promise<void> {
	const vite = path.join(root, 'node_modules', 'vite', 'bin', 'vite.js');
	if (!fs.existsSync(vite)) {
		throw new BuildError('the client is not built and Vite is not installed (run `npm install` first)');
	}
	const staging = path.join(BUILDS, `${hash}.staging-${process.pid}`);
	fs.rmSync(staging, { recursive: true, force: true });
	log(`building the client (${hash}${testHooks ? ', with test hooks' : ''})…`);
	const started = performance.now();
	// Always a production build: a start or a test under NODE_ENV=test must not serve a development client.
	const env = {
		...process.env,
		NODE_ENV: 'production',
		CLIENT_BUILD_DIR: staging,
		CHAT_TEST_HOOKS: testHooks ? '1' : '0',
	};
	const proc = spawn(process.execPath, [vite, 'build'], {
		cwd: root,
		env,
		stdio: ['ignore', 'pipe', 'pipe'],
	});
	let output = '';
	proc.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
	proc.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
	const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
	if (code !== 0) {
		fs.rmSync(staging, { recursive: true, force: true });
		throw new BuildError(`vite build failed (exit ${code}):\n${output.slice(-4000)}`);
	}
	const missing = missingPrecached(staging);
	if (missing) {
		fs.rmSync(staging, { recursive: true, force: true });
		throw new BuildError(missing);
	}
	const ms = Math.round(performance.now() - started);
	fs.writeFileSync(
		path.join(staging, MARKER),
		JSON.stringify({ hash, builtAt: new Date().toISOString(), ms }),
	);
	fs.renameSync(staging, path.join(BUILDS, hash));
	log(`client built in ${(ms / 1000).toFixed(1)} s`);
}

/** Every file the service worker precaches must be in the build, or an offline start breaks. */
function missingPrecached(dir: string): string | undefined {
	const sw = path.join(dir, 'sw.js');
	if (!fs.existsSync(sw)) return 'the build has no sw.js';
	const urls = [...fs.readFileSync(sw, 'utf8').matchAll(/"?url"?:\s*"([^"]+)"/g)].map((m) => m[1] as string);
	if (!urls.includes('index.html')) return 'sw.js does not precache index.html';
	const missing = urls.filter((url) => !fs.existsSync(path.join(dir, url)));
	return missing.length
		? `sw.js precaches files that are not in the build: ${missing.join(', ')}`
		: undefined;
}

/** Points `build` at `.builds/<hash>` by renaming a new symlink over it (atomic: never missing, never half). */
function pointLinkAt(hash: string): void {
	const target = path.join('.builds', hash);
	const current = fs.lstatSync(LINK, { throwIfNoEntry: false });
	if (current?.isSymbolicLink() && fs.readlinkSync(LINK) === target) return;
	// A `build/` folder from before builds were versioned: replaced once.
	if (current && !current.isSymbolicLink()) fs.rmSync(LINK, { recursive: true, force: true });
	const temp = `${LINK}.link-${process.pid}`;
	fs.rmSync(temp, { force: true });
	fs.symlinkSync(target, temp);
	fs.renameSync(temp, LINK);
}

/** Removes all but the newest KEEP_BUILDS complete builds, and staging folders whose builder is gone. */
function prune(keep: string): void {
	const entries = fs.readdirSync(BUILDS).filter((name) => name !== 'lock');
	for (const name of entries) {
		const owner = /\.staging-(\d+)$/.exec(name);
		if (owner && !isRunning(Number(owner[1])))
			fs.rmSync(path.join(BUILDS, name), { recursive: true, force: true });
	}
	const builds = entries
		.filter((name) => !name.includes('.') && name !== keep && isComplete(path.join(BUILDS, name)))
		.map((name) => ({ name, mtime: fs.statSync(path.join(BUILDS, name, MARKER)).mtimeMs }))
		.sort((a, b) => b.mtime - a.mtime);
	for (const old of builds.slice(KEEP_BUILDS - 1))
		fs.rmSync(path.join(BUILDS, old.name), { recursive: true, force: true });
}

function readOwner(): number {
	try {
		return Number(fs.readFileSync(path.join(LOCK, 'owner'), 'utf8')) || 0;
	} catch {
		return 0;
	}
}

/** A directory lock (mkdir is atomic) naming its owner; taken over when the owner died or it is stale. */
async function lock(log: (line: string) => void): Promise<() => void> {
	let said = false;
	for (;;) {
		try {
			fs.mkdirSync(LOCK);
			fs.writeFileSync(path.join(LOCK, 'owner'), String(process.pid));
			return () => fs.rmSync(LOCK, { recursive: true, force: true });
		} catch (error) {
			if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
		}
		const owner = readOwner();
		const age = Date.now() - (fs.statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
		// An owner that has not written its pid yet is given a moment before it counts as gone.
		if ((owner && !isRunning(owner)) || age > LOCK_STALE_MS || (!owner && age > 5_000)) {
			fs.rmSync(LOCK, { recursive: true, force: true });
			continue;
		}
		if (!said) log(`waiting for another build of the client (pid ${owner || '?'})…`);
		said = true;
		await new Promise((resolve) => setTimeout(resolve, 200));
	}
}

// Run as a script (scripts/with-node.mjs sets argv[1] to this file), not when imported.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
	try {
		const dir = await ensureClientBuild({ log: (line) => process.stderr.write(`${line}\n`) });
		process.stdout.write(`client: ${path.relative(root, dir)} (build -> ${fs.readlinkSync(LINK)})\n`);
	} catch (error) {
		process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
		process.exit(1);
	}
}

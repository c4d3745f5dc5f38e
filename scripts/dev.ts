/**
 * Development runner: `node scripts/dev.ts [vite args…]` (or `npm run dev`).
 *
 * Starts the API server (`node --watch server/main.ts` on API_PORT, default 3000) and the Vite dev server, whose
 * proxy (vite.config.ts) forwards /api, /healthz, /readyz, /metrics and the /collab WebSocket to the API. Both
 * outputs are prefixed line by line. Ctrl-C or SIGTERM stops both; if either child exits on its own, the other is
 * stopped and this script exits non-zero, so a crash is never hidden behind a half-running setup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

const root = fileURLToPath(new URL('..', import.meta.url));
const apiPort = process.env.API_PORT ?? '3000';
/** How long a child may take to shut down after SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 5000;

// Piped output is not a TTY, so ask the children for colours when our own terminal supports them.
const colour = process.stdout.isTTY && process.env.NO_COLOR === undefined;
const childEnv = {
	...process.env,
	...(colour && process.env.FORCE_COLOR === undefined ? { FORCE_COLOR: '1' } : {}),
};

interface Child {
	name: string;
	process: ChildProcess;
	exited: Promise<void>;
}

function pipeLines(from: Readable | null, to: Writable, prefix: string): void {
	if (!from) return;
	createInterface({ input: from, crlfDelay: Infinity }).on('line', (line) => to.write(`${prefix} ${line}\n`));
}

function start(name: string, colourCode: number, args: string[], env: NodeJS.ProcessEnv): Child {
	// process.execPath, not a shebang: the children must run on this same Node 24, not whatever `node` PATH finds.
	const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
	const prefix = colour ? `\x1b[${colourCode}m[${name}]\x1b[0m` : `[${name}]`;
	pipeLines(child.stdout, process.stdout, prefix);
	pipeLines(child.stderr, process.stderr, prefix);
	const exited = new Promise<void>((resolve) => {
		child.once('exit', (code, signal) => {
			process.stderr.write(`${prefix} exited (${signal ?? `code ${code}`})\n`);
			resolve();
		});
		child.once('error', (error) => {
			process.stderr.write(`${prefix} failed to start: ${error.message}\n`);
			resolve();
		});
	});
	return { name, process: child, exited };
}

const children = [
	start('api', 36, ['--watch', 'server/main.ts'], { ...childEnv, PORT: apiPort }),
	start('web', 35, ['node_modules/.bin/vite', 'dev', ...process.argv.slice(2)], {
		...childEnv,
		API_PORT: apiPort,
	}),
];

function isRunning({ process: child }: Child): boolean {
	return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Sends `signal` to the child by its PID; it may already have gone, which is fine. */
function signalChild(child: Child, signal: NodeJS.Signals): void {
	if (!isRunning(child) || child.process.pid === undefined) return;
	try {
		process.kill(child.process.pid, signal);
	} catch {
		// ESRCH: it exited between the check and the kill; there is nothing left to stop.
	}
}

let stopping: Promise<never> | undefined;

/** Stops both children (SIGTERM, then SIGKILL after a grace period) and exits. Idempotent. */
function stop(exitCode: number): Promise<never> {
	stopping ??= (async () => {
		for (const child of children) signalChild(child, 'SIGTERM');
		const timer = setTimeout(() => {
			for (const child of children) signalChild(child, 'SIGKILL');
		}, STOP_TIMEOUT_MS);
		await Promise.all(children.map((child) => child.exited));
		clearTimeout(timer);
		process.exit(exitCode);
	})();
	return stopping;
}

process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
for (const child of children) {
	void child.exited.then(() => {
		if (!stopping) process.stderr.write(`[dev] ${child.name} stopped; stopping the rest\n`);
		return stop(1);
	});
}

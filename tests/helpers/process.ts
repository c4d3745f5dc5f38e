import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface ServerProcess {
	proc: ChildProcess;
	/** Resolves with the URL once the server logs that it listens. */
	ready: Promise<string>;
	/** The pid of the node server itself (not of npm, when started through npm), once listening. */
	serverPid(): number;
	output(): string;
	/** Resolves with the exit code (or the signal's name). */
	exited: Promise<number | string>;
}

/** Runs the real server entry point (or any npm script) as a child process with the given env. */
export function spawnServer(
	env: Record<string, string>,
	command: string[] = [process.execPath, 'server/main.ts'],
	cwd = repoRoot,
): ServerProcess {
	const proc = spawn(command[0] as string, command.slice(1), {
		cwd,
		env: {
			PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`,
			HOME: process.env.HOME ?? '/tmp',
			NODE_ENV: 'test',
			LOG_LEVEL: 'info',
			...env,
		},
		stdio: ['ignore', 'pipe', 'pipe'],
	});
	let out = '';
	let pid = 0;
	let resolveReady!: (url: string) => void;
	let rejectReady!: (error: Error) => void;
	const ready = new Promise<string>((resolve, reject) => {
		resolveReady = resolve;
		rejectReady = reject;
	});
	const onData = (chunk: Buffer) => {
		out += chunk.toString();
		const match = out.match(/"pid":(\d+)[^\n]*"url":"(http:\/\/[^"]+)"[^\n]*"msg":"server listening"/);
		if (match?.[2]) {
			pid = Number(match[1]);
			resolveReady(match[2]);
		}
	};
	proc.stdout?.on('data', onData);
	proc.stderr?.on('data', onData);
	const exited = new Promise<number | string>((resolve) =>
		proc.on('exit', (code, signal) => {
			// In a test run the output joins the suite's server logs, which are audited for secrets at the end.
			const logDir = process.env.TEST_SERVER_LOG_DIR;
			if (logDir) {
				fs.mkdirSync(logDir, { recursive: true });
				fs.writeFileSync(path.join(logDir, `spawned-${proc.pid}-${Date.now()}.log`), out);
			}
			rejectReady(new Error(`server exited (${code ?? signal}) before listening:\n${out.slice(-3000)}`));
			resolve(code ?? signal ?? -1);
		}),
	);
	// A test that expects the server to fail never awaits `ready`; its rejection is not an error then.
	ready.catch(() => {});
	return { proc, ready, serverPid: () => pid, output: () => out, exited };
}

/** A port nobody uses right now (for a server that must come back on the same address). */
export function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const server = net.createServer();
		server.listen(0, '127.0.0.1', () => {
			const { port } = server.address() as net.AddressInfo;
			server.close(() => resolve(port));
		});
		server.on('error', reject);
	});
}

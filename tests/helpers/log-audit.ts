import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './process.ts';

/**
 * Every server the test suite runs keeps its log here (in-process servers write to it, spawned ones leave their
 * output when they exit), so that the global teardown can check the logs of the whole suite: no message
 * content, no token and no password may appear in them (issue 8).
 */
export const serverLogDir = path.join(repoRoot, 'test-results', 'server-logs');

/** Where a server started by a test writes its log; undefined outside a test run. */
export function serverLogFile(name: string): string | undefined {
	const dir = process.env.TEST_SERVER_LOG_DIR;
	if (!dir) return undefined;
	fs.mkdirSync(dir, { recursive: true });
	return path.join(dir, `${name}-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.log`);
}

function walk(dir: string): string[] {
	return fs
		.readdirSync(dir, { withFileTypes: true })
		.flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/**
 * What the tests themselves typed as passwords and as message contents (string literals of 10 or more
 * characters in `password: '…'`, `.send('…')`, `content: '…'` and Playwright `fill(…, '…')` calls): each of them
 * must be absent from every server log.
 */
export function secretsOfTheSuite(): string[] {
	const patterns = [
		/password: ?'([^'\\]{10,})'/g,
		/\.send\('([^'\\$]{10,})'/g,
		/content: ?'([^'\\]{10,})'/g,
		/\.fill\([^,]+, ?'([^'\\]{10,})'/g,
	];
	const found = new Set<string>();
	for (const file of walk(path.join(repoRoot, 'tests')).filter((f) => f.endsWith('.ts'))) {
		const source = fs.readFileSync(file, 'utf8');
		for (const pattern of patterns)
			for (const match of source.matchAll(pattern)) found.add(match[1] as string);
	}
	return [...found];
}

const JWT = /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/;
/** A secret-bearing field whose value was not censored. */
const FIELD = /"(password|token|accessToken|refreshToken|content|authorization|cookie)":"(?!\[redacted\])/i;

/** Lines of the suite's server logs that carry a secret: `file:line: what`. Empty when the logs are clean. */
export function auditServerLogs(dir = serverLogDir): { files: number; bytes: number; findings: string[] } {
	if (!fs.existsSync(dir)) return { files: 0, bytes: 0, findings: [] };
	const secrets = secretsOfTheSuite();
	const findings: string[] = [];
	let bytes = 0;
	const files = walk(dir);
	for (const file of files) {
		const text = fs.readFileSync(file, 'utf8');
		bytes += text.length;
		const lines = text.split('\n');
		lines.forEach((line, i) => {
			const where = `${path.relative(repoRoot, file)}:${i + 1}`;
			if (JWT.test(line)) findings.push(`${where}: a JWT`);
			const field = FIELD.exec(line);
			if (field) findings.push(`${where}: an uncensored "${field[1]}" field`);
			for (const secret of secrets) if (line.includes(secret)) findings.push(`${where}: "${secret}"`);
		});
	}
	return { files: files.length, bytes, findings };
}

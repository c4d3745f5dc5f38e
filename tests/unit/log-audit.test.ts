import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { auditServerLogs, secretsOfTheSuite } from '../helpers/log-audit.ts';

/** The audit the global teardown runs over the suite's server logs finds what it must (issue 8). */
describe('the server-log audit', () => {
	const audit = (lines: string[]) => {
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'log-audit-'));
		try {
			fs.writeFileSync(path.join(dir, 'server.log'), `${lines.join('\n')}\n`);
			return auditServerLogs(dir).findings;
		} finally {
			fs.rmSync(dir, { recursive: true, force: true });
		}
	};

	it('knows the passwords and contents the tests type', () => {
		const secrets = secretsOfTheSuite();
		expect(secrets).toContain('pineapple umbrella');
		expect(secrets).toContain('a message worth following');
	});

	it('passes clean lines and censored fields', () => {
		expect(
			audit([
				'{"level":30,"msg":"user registered","userId":"0b9c…"}',
				'{"level":40,"msg":"update rejected","content":"[redacted]","password":"[redacted]"}',
			]),
		).toEqual([]);
	});

	it('finds a JWT, an uncensored secret field, a password and a message the tests typed', () => {
		const findings = audit([
			'{"msg":"x","header":"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.c2lnbmF0dXJlLXBhcnQ"}',
			'{"msg":"x","refreshToken":"abc"}',
			'{"msg":"login for pineapple umbrella"}',
			'{"msg":"echo: a message worth following"}',
		]);
		expect(findings).toHaveLength(4);
		expect(findings.join('\n')).toMatch(
			/JWT[\s\S]*refreshToken[\s\S]*pineapple umbrella[\s\S]*worth following/,
		);
	});
});

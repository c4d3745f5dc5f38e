import { describe, expect, it } from 'vitest';
import { TokenError, TokenService } from '../../server/auth/tokens.ts';
import { parseConfig } from '../../server/config.ts';
import { tmpDir } from '../helpers/server.ts';

const secretA = 'a'.repeat(20) + 'first-secret-0123456789';
const secretB = 'b'.repeat(20) + 'second-secret-0123456789';
const service = (env: Record<string, string>) =>
	new TokenService(parseConfig({ DATA_DIR: tmpDir('tokens'), ...env }));
const claims = { userId: '6f1c1b8e-8a4e-4c89-9d7e-3c1a2b3c4d5e', name: 'ana' };

describe('access tokens', () => {
	it('round-trips the user through a signed token', async () => {
		const tokens = service({ JWT_SECRET: secretA });
		expect(await tokens.verifyAccess(await tokens.signAccess(claims))).toMatchObject(claims);
		const session = { ...claims, sessionId: crypto.randomUUID() };
		const verified = await tokens.verifyAccess(await tokens.signAccess(session));
		expect(verified).toMatchObject(session);
		expect(verified.expiresAt).toBeGreaterThan(Date.now());
	});

	it('keeps accepting tokens of the previous key after a rotation, and refuses unknown keys', async () => {
		const old = await service({ JWT_SECRET: secretA }).signAccess(claims);
		const rotated = service({ JWT_SECRET: secretB, JWT_PREVIOUS_SECRETS: secretA });
		expect(await rotated.verifyAccess(old)).toMatchObject(claims);
		await expect(service({ JWT_SECRET: secretB }).verifyAccess(old)).rejects.toBeInstanceOf(TokenError);
	});

	it('generates a development secret once and keeps it in DATA_DIR', async () => {
		const dataDir = tmpDir('tokens');
		const token = await new TokenService(parseConfig({ DATA_DIR: dataDir })).signAccess(claims);
		expect(await new TokenService(parseConfig({ DATA_DIR: dataDir })).verifyAccess(token)).toMatchObject(
			claims,
		);
	});

	it('reports an expired token as expired', async () => {
		const tokens = service({ JWT_SECRET: secretA, ACCESS_TOKEN_TTL_SECONDS: '1' });
		const token = await tokens.signAccess(claims);
		await new Promise((r) => setTimeout(r, 2100));
		await expect(tokens.verifyAccess(token)).rejects.toMatchObject({ code: 'token_expired' });
	});
});

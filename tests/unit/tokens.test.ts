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

	it('checks the expiry again when a token it verified before comes back', async () => {
		const tokens = service({ JWT_SECRET: secretA, ACCESS_TOKEN_TTL_SECONDS: '1' });
		const token = await tokens.signAccess(claims);
		expect(await tokens.verifyAccess(token)).toMatchObject(claims);
		await new Promise((r) => setTimeout(r, 1100));
		await expect(tokens.verifyAccess(token)).rejects.toMatchObject({ code: 'token_expired' });
		await expect(tokens.verifyAccess(token)).rejects.toMatchObject({ code: 'token_expired' });
	});

	it('remembers a verified token by its exact text: one changed character is checked, and refused', async () => {
		const tokens = service({ JWT_SECRET: secretA });
		const token = await tokens.signAccess(claims);
		expect(await tokens.verifyAccess(token)).toMatchObject(claims);
		const [header, payload, signature] = token.split('.') as [string, string, string];
		const middle = Math.floor(signature.length / 2);
		const flipped = signature[middle] === 'A' ? 'B' : 'A';
		const forged = `${header}.${payload}.${signature.slice(0, middle)}${flipped}${signature.slice(middle + 1)}`;
		await expect(tokens.verifyAccess(forged)).rejects.toMatchObject({ code: 'token_invalid' });
		// Another user's name in the same signature: refused as well.
		const otherPayload = Buffer.from(
			JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), name: 'eve' }),
		).toString('base64url');
		await expect(tokens.verifyAccess(`${header}.${otherPayload}.${signature}`)).rejects.toMatchObject({
			code: 'token_invalid',
		});
		// And a caller that changes what it was given does not change what the next one gets.
		const first = await tokens.verifyAccess(token);
		first.name = 'mallory';
		expect((await tokens.verifyAccess(token)).name).toBe('ana');
	});
});

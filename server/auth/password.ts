import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const scrypt = (password: string, salt: Buffer, keylen: number, options: ScryptOptions) =>
	new Promise<Buffer>((resolve, reject) =>
		scryptCallback(password, salt, keylen, options, (error, key) => (error ? reject(error) : resolve(key))),
	);

/** scrypt at N=2^15, r=8, p=1: 32 MiB and tens of milliseconds per hash, the OWASP minimum for scrypt. */
const params = { N: 2 ** 15, r: 8, p: 1, keylen: 32 };
const maxmem = 128 * params.N * params.r * 2;

/** Hashes a password as `scrypt$N$r$p$salt$hash` (base64url), so the parameters can change later. */
export async function hashPassword(password: string): Promise<string> {
	const salt = randomBytes(16);
	const key = await scrypt(password.normalize('NFKC'), salt, params.keylen, {
		N: params.N,
		r: params.r,
		p: params.p,
		maxmem,
	});
	return ['scrypt', params.N, params.r, params.p, salt.toString('base64url'), key.toString('base64url')].join(
		'$',
	);
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
	const [scheme, n, r, p, salt, hash] = stored.split('$');
	if (scheme !== 'scrypt' || !n || !r || !p || !salt || !hash) return false;
	const expected = Buffer.from(hash, 'base64url');
	const key = await scrypt(password.normalize('NFKC'), Buffer.from(salt, 'base64url'), expected.length, {
		N: Number(n),
		r: Number(r),
		p: Number(p),
		maxmem: 128 * Number(n) * Number(r) * 2,
	});
	return timingSafeEqual(key, expected);
}

/**
 * A hash of a random password, verified against when the name is unknown so that a login for an
 * unknown name costs as much as one with a wrong password.
 */
let dummyHash: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
	dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
	return dummyHash;
}

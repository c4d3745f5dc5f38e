import webpush from 'web-push';
import { z } from 'zod';
import type { Queryable } from '../db/types.ts';

/** A VAPID key pair (RFC 8292) in unpadded base64url, as `web-push` makes and reads them. */
export interface VapidKeys {
	publicKey: string;
	privateKey: string;
}

const KEY_NAME = 'vapid';

const storedKeys = z.object({
	publicKey: z.string().regex(/^B[A-Za-z0-9_-]{86}$/),
	privateKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
});

/**
 * The cluster's VAPID key pair: the one in `server_keys`, or a new one generated and stored there. Every node of
 * a cluster shares the database and so the keys; browsers subscribed with one node's public key are pushed to by
 * all of them. Two nodes booting at once both insert with ON CONFLICT DO NOTHING and read back whichever pair
 * won; the pair is one row, so no node can end up with halves of two pairs.
 */
export async function loadOrCreateVapidKeys(db: Queryable): Promise<VapidKeys> {
	const generated = webpush.generateVAPIDKeys();
	await db.query('INSERT INTO server_keys (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [
		KEY_NAME,
		JSON.stringify(generated),
	]);
	const { rows } = await db.query<{ value: string }>('SELECT value FROM server_keys WHERE name = $1', [
		KEY_NAME,
	]);
	const parsed = storedKeys.safeParse(JSON.parse(rows[0]?.value ?? 'null'));
	if (!parsed.success) throw new Error(`server_keys.${KEY_NAME} does not hold a VAPID key pair`);
	return parsed.data;
}

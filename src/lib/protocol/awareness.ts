import { z } from './zod.ts';
import { uuid } from './ids.ts';
import { limits } from './limits.ts';

/**
 * A connection's awareness (presence) state. The server rewrites `user.id` and `user.name` from the
 * authenticated connection and drops every other field, so what peers receive always has this shape.
 */
export const awarenessState = z.strictObject({
	user: z.strictObject({
		id: uuid,
		name: z.string().min(1).max(limits.nameMax),
		color: z.string().regex(/^#[0-9a-f]{6}$/i),
	}),
	typing: z.boolean(),
});
export type AwarenessState = z.infer<typeof awarenessState>;

/** A stable colour per user, for avatars and cursors, when the client does not choose one. */
export function colorFor(userId: string): string {
	let hash = 0;
	for (const ch of userId) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
	const hue = hash % 360;
	// HSL 65 % saturation, 45 % lightness, as hex.
	const s = 0.65;
	const l = 0.45;
	const f = (n: number) => {
		const k = (n + hue / 30) % 12;
		const c = l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1));
		return Math.round(c * 255)
			.toString(16)
			.padStart(2, '0');
	};
	return `#${f(0)}${f(8)}${f(4)}`;
}

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

/**
 * A stable colour per user, for avatars and cursors, when the client does not choose one: a hue from the id, at
 * 65 % saturation and the lightness (45 % or darker) that gives white text at least 4.5:1 (WCAG AA).
 */
export function colorFor(userId: string): string {
	let color = colors.get(userId);
	if (color === undefined) {
		// Bounded: a server sees every user of every room it serves; past this, it starts again.
		if (colors.size >= 10_000) colors.clear();
		color = computeColor(userId);
		colors.set(userId, color);
	}
	return color;
}

/**
 * Colours already worked out, by user id: each avatar a page draws and each presence renewal without a colour asks
 * again, and the search for an accessible lightness takes a few dozen powers.
 */
const colors = new Map<string, string>();

function computeColor(userId: string): string {
	let hash = 0;
	for (const ch of userId) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
	const hue = hash % 360;
	for (let l = 0.45; ; l -= 0.02) {
		const rgb = hsl(hue, 0.65, l);
		if (contrastWithWhite(rgb) >= 4.6 || l < 0.2)
			return `#${rgb
				.map((c) =>
					Math.round(c * 255)
						.toString(16)
						.padStart(2, '0'),
				)
				.join('')}`;
	}
}

/** HSL to RGB, each channel 0–1. */
function hsl(hue: number, s: number, l: number): [number, number, number] {
	const f = (n: number) => {
		const k = (n + hue / 30) % 12;
		return l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1));
	};
	return [f(0), f(8), f(4)];
}

/** WCAG's contrast ratio of white on an sRGB colour. */
function contrastWithWhite(rgb: [number, number, number]): number {
	const linear = rgb.map((c) => {
		const v = Math.round(c * 255) / 255;
		return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
	});
	const luminance = 0.2126 * linear[0]! + 0.7152 * linear[1]! + 0.0722 * linear[2]!;
	return 1.05 / (luminance + 0.05);
}

/**
 * Emoji for the composer and reactions, all from this server: the picker (emoji-picker-element) and the
 * `:shortcode:` completion read one data file that the app ships (precached by the service worker, so both work
 * offline from the first visit) and keep in IndexedDB. Nothing is fetched from a CDN.
 */

import type { Database } from 'emoji-picker-element';
import dataSource from 'emoji-picker-element-data/en/emojibase/data.json?url';

export { dataSource as emojiDataSource };

let database: Promise<Database> | null = null;

function db(): Promise<Database> {
	database ??= import('emoji-picker-element').then(({ Database }) => new Database({ dataSource }));
	return database;
}

export interface ShortcodeHit {
	unicode: string;
	shortcode: string;
}

/** Emoji whose shortcode starts with `prefix` (`sm` → `:smile:`, `:smiley:`…), shortest first; at most `limit`. */
export async function shortcodeHits(prefix: string, limit = 6): Promise<ShortcodeHit[]> {
	const lower = prefix.toLowerCase();
	if (lower.length < 2) return [];
	try {
		const found = await (await db()).getEmojiBySearchQuery(lower);
		const hits: ShortcodeHit[] = [];
		for (const emoji of found) {
			if (!('unicode' in emoji)) continue;
			const shortcode = emoji.shortcodes?.find((code) => code.startsWith(lower));
			if (shortcode) hits.push({ unicode: emoji.unicode, shortcode });
		}
		return hits.sort((a, b) => a.shortcode.length - b.shortcode.length).slice(0, limit);
	} catch (error) {
		// No data yet (first visit offline, storage blocked): no completion, typing goes on.
		console.warn('emoji data unavailable', error);
		return [];
	}
}

/** Registers the `<emoji-picker>` element (its code is loaded on first use, not with the app). */
export function loadEmojiPicker(): Promise<unknown> {
	return import('emoji-picker-element');
}

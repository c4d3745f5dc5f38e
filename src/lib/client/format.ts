/** Display helpers for times and names (pure functions; the locale is the browser's). */

import { mentionedName, mentionPattern } from '../protocol/names.ts';

const time = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const day = new Intl.DateTimeFormat(undefined, {
	weekday: 'long',
	day: 'numeric',
	month: 'long',
	year: 'numeric',
});
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function formatTime(ms: number): string {
	return time.format(ms);
}

/** A day separator: "Today", "Yesterday" or the full date. */
export function formatDay(ms: number, now = Date.now()): string {
	const key = dayKey(ms);
	if (key === dayKey(now)) return 'Today';
	if (key === dayKey(now - 86_400_000)) return 'Yesterday';
	return day.format(ms);
}

/** A local calendar day, to find where a separator goes. */
export function dayKey(ms: number): string {
	const d = new Date(ms);
	return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/** "5 minutes ago", "yesterday", … for last-seen times. */
export function formatAgo(iso: string | null, now = Date.now()): string {
	if (!iso) return 'never';
	const ms = Date.parse(iso);
	if (Number.isNaN(ms)) return 'unknown';
	const seconds = Math.round((ms - now) / 1000);
	const abs = Math.abs(seconds);
	if (abs < 60) return 'just now';
	if (abs < 3600) return relative.format(Math.round(seconds / 60), 'minute');
	if (abs < 86_400) return relative.format(Math.round(seconds / 3600), 'hour');
	return relative.format(Math.round(seconds / 86_400), 'day');
}

/** Up to two initials for an avatar. */
export function initials(name: string): string {
	const parts = name.split(/[\s._-]+/).filter(Boolean);
	const letters = parts.length > 1 ? parts[0]![0]! + parts[1]![0]! : name.slice(0, 2);
	return letters.toUpperCase();
}

/** A room's title: the group's name, or for a 1:1 room the other person's name. */
export function roomTitle(
	room: { name: string | null; isGroup: boolean; members: { id: string; name: string }[] },
	userId: string,
): string {
	if (room.isGroup) return room.name ?? 'Group';
	return room.members.find((m) => m.id !== userId)?.name ?? room.name ?? 'Chat';
}

/** A search snippet (hits between `<mark>` and `</mark>`) as parts to render as text: never as HTML. */
export function snippetParts(snippet: string): { text: string; hit: boolean }[] {
	const parts: { text: string; hit: boolean }[] = [];
	for (const [i, piece] of snippet.split(/<\/?mark>/).entries()) {
		if (piece) parts.push({ text: piece, hit: i % 2 === 1 });
	}
	return parts;
}

/** The words of a search, lower-cased, for matching on this device. */
export function searchWords(query: string): string[] {
	return query
		.toLowerCase()
		.split(/\s+/)
		.map((w) => w.replace(/^["'+-]+|["']+$/g, ''))
		.filter(Boolean);
}

/** A snippet of `content` around the first hit of `words`, hits marked like the server's. */
export function localSnippet(content: string, words: string[], radius = 60): string {
	const lower = content.toLowerCase();
	const first = Math.min(...words.map((w) => lower.indexOf(w)).filter((i) => i >= 0));
	const start = Math.max(0, first - radius);
	const end = Math.min(content.length, first + radius * 2);
	const text = (start > 0 ? '…' : '') + content.slice(start, end) + (end < content.length ? '…' : '');
	const pattern = new RegExp(words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gi');
	return text.replace(pattern, (hit) => `<mark>${hit}</mark>`);
}

/** `@name` mentions of room members in `content`, as parts to render as text (names compared without case). */
export function mentionParts(
	content: string,
	memberNames: ReadonlySet<string>,
): { text: string; mention?: string }[] {
	const parts: { text: string; mention?: string }[] = [];
	let last = 0;
	for (const match of content.matchAll(mentionPattern())) {
		const name = mentionedName(match[2] as string, (lower) => memberNames.has(lower));
		if (!name) continue;
		const start = (match.index ?? 0) + (match[1] as string).length;
		if (start > last) parts.push({ text: content.slice(last, start) });
		parts.push({ text: `@${name}`, mention: name.toLowerCase() });
		last = start + name.length + 1;
	}
	if (last < content.length) parts.push({ text: content.slice(last) });
	return parts;
}

/** A size in bytes as people read it: `512 B`, `1.5 KB`, `25 MB` (powers of 1024, as file managers show). */
export function formatBytes(bytes: number): string {
	if (bytes < 1024) return `${bytes} B`;
	const units = ['KB', 'MB', 'GB', 'TB'];
	let value = bytes / 1024;
	let unit = 0;
	while (value >= 1024 && unit < units.length - 1) {
		value /= 1024;
		unit++;
	}
	return `${value < 10 ? value.toFixed(1).replace(/\.0$/, '') : Math.round(value)} ${units[unit]}`;
}

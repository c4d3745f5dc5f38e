/** Display helpers for times and names (pure functions; the locale is the browser's). */

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

/**
 * A short name for the device a session was started from, from its User-Agent header: "Firefox on Windows",
 * "Safari on iPhone", "curl". Only for people to recognise their sessions; never used to decide anything.
 */
export function deviceLabel(userAgent: string | undefined): string | null {
	const ua = (userAgent ?? '').slice(0, 512);
	if (!ua.trim()) return null;
	const browser =
		[
			[/Edg(e|A|iOS)?\//, 'Edge'],
			[/OPR\/|Opera/, 'Opera'],
			[/Firefox\/|FxiOS/, 'Firefox'],
			[/Chrome\/|CriOS|Chromium/, 'Chrome'],
			[/Safari\//, 'Safari'],
		].find(([pattern]) => (pattern as RegExp).test(ua))?.[1] ?? null;
	const system =
		[
			[/iPhone/, 'iPhone'],
			[/iPad/, 'iPad'],
			[/Android/, 'Android'],
			[/Windows/, 'Windows'],
			[/Mac OS X|Macintosh/, 'macOS'],
			[/CrOS/, 'ChromeOS'],
			[/Linux/, 'Linux'],
		].find(([pattern]) => (pattern as RegExp).test(ua))?.[1] ?? null;
	if (browser && system) return `${browser} on ${system}`;
	if (browser ?? system) return (browser ?? system) as string;
	// A tool or a bot: its own first word ("curl/8.5" → "curl"), kept short and printable.
	return (
		ua
			.split(/[\s/;(]/)[0]!
			.replace(/[^\w.-]/g, '')
			.slice(0, 40) || null
	);
}

/**
 * The server's clock as seen from here. Messages are ordered by `createdAt`, and the server refuses one more
 * than two minutes ahead of its own clock, so the client corrects its clock by the offset it measures from the
 * HTTP `Date` header of API answers. The header has a resolution of one second; offsets below that are noise.
 */
const STORAGE_KEY = 'chat-server-offset';
const NOISE_MS = 1500;

let offsetMs = readStored();

function readStored(): number {
	try {
		const value = Number(globalThis.localStorage?.getItem(STORAGE_KEY));
		return Number.isFinite(value) ? value : 0;
	} catch {
		// Storage can be disabled (private modes): start uncorrected.
		return 0;
	}
}

/** Feeds one answer's `Date` header; `sentAt` and `receivedAt` bracket the request (ms since epoch). */
export function observe(dateHeader: string | null, sentAt: number, receivedAt: number): void {
	if (!dateHeader) return;
	const serverMs = Date.parse(dateHeader);
	if (Number.isNaN(serverMs)) return;
	// The header is truncated to the second: its true value lies in [serverMs, serverMs + 1000).
	const measured = serverMs + 500 - (sentAt + receivedAt) / 2;
	const next = Math.abs(measured) < NOISE_MS ? 0 : Math.round(measured);
	if (next === offsetMs) return;
	offsetMs = next;
	try {
		globalThis.localStorage?.setItem(STORAGE_KEY, String(next));
	} catch {
		// Not persisted: the next answer measures it again.
	}
}

/** The current time on the server's clock, in ms since epoch. */
export function serverNow(): number {
	return Date.now() + offsetMs;
}

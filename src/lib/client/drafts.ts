/**
 * What the user typed in a room and has not sent, kept on this device per account and room: it survives a switch to
 * another room, a reload and a restart, and leaves the device with the account's other data at sign-out.
 * localStorage: a draft is small, and the composer needs it in the same frame the room opens.
 */

const PREFIX = 'chat-draft:';

const keyOf = (userId: string, roomId: string) => `${PREFIX}${userId}:${roomId}`;

export function readDraft(userId: string, roomId: string): string {
	try {
		return localStorage.getItem(keyOf(userId, roomId)) ?? '';
	} catch {
		// Storage blocked (some private modes): no draft was kept.
		return '';
	}
}

/** Keeps `text` as the room's draft; an empty or blank text removes it. */
export function writeDraft(userId: string, roomId: string, text: string): void {
	try {
		if (text.trim()) localStorage.setItem(keyOf(userId, roomId), text);
		else localStorage.removeItem(keyOf(userId, roomId));
	} catch {
		// Full or blocked storage: the draft lives as long as the page, as before drafts were kept.
	}
}

/** Deletes every draft of `userId` (sign-out with the account's data leaving the device). */
export function forgetDrafts(userId: string): void {
	try {
		for (const key of Object.keys(localStorage))
			if (key.startsWith(`${PREFIX}${userId}:`)) localStorage.removeItem(key);
	} catch {
		// Unavailable storage kept nothing.
	}
}

import { collabRejections } from '../protocol/errors.ts';
import { sessionEndFromClose, type SessionEndReason } from './user-channel.svelte.ts';

/**
 * What a room does about the server closing it or refusing its login, decided from the reason alone
 * (docs/protocol.md, the close-reason table). RoomStore carries the action out.
 */
export type RoomAction =
	/** Signed out elsewhere, password changed, account deleted: the whole app signs out (unsent data kept). */
	| { kind: 'end-session'; ended: SessionEndReason | 'unspecified' }
	/** Not a member (any more), or no such room. */
	| { kind: 'removed' }
	/** An update of this room was refused: rebuild the local copy. */
	| { kind: 'rebuild' }
	/** New rights, or a token that ran out before it was renewed: open the same document with a new provider. */
	| { kind: 'reopen' }
	/** The server could not check, or too many logins: log in again with a growing wait. */
	| { kind: 'retry-login' }
	/** Any other refused login (an expired or missing token): try once more, not in a loop. */
	| { kind: 'retry-once' }
	/** This app is older than the server accepts: only a reload helps. */
	| { kind: 'outdated' }
	/** A passing condition to show; the provider reconnects by itself. */
	| { kind: 'notice'; text: string }
	/** A dropped socket: the shared socket reconnects and every provider re-syncs. */
	| { kind: 'none' };

export const storageNotice = 'Server storage is unavailable; retrying…';

const nameOf = (reason: string) => reason.split(':')[0]?.trim() ?? '';

/** What to do when the server closes the room with `reason`. */
export function afterClose(reason: string): RoomAction {
	const ended = sessionEndFromClose(reason);
	if (ended) return { kind: 'end-session', ended };
	switch (nameOf(reason)) {
		case collabRejections.invalidUpdate.reason:
		case collabRejections.updateTooLarge.reason:
			return { kind: 'rebuild' };
		case collabRejections.unavailable.reason:
			return { kind: 'notice', text: storageNotice };
		case collabRejections.rateLimited.reason:
			return { kind: 'notice', text: 'Sending too fast; retrying shortly…' };
		case collabRejections.notAMember.reason:
			return { kind: 'removed' };
		case collabRejections.roleChanged.reason:
		case collabRejections.tokenExpired.reason:
			return { kind: 'reopen' };
		default:
			return { kind: 'none' };
	}
}

/** What to do when the server refuses the room's login with `reason`. */
export function afterLoginRefused(reason: string): RoomAction {
	const ended = sessionEndFromClose(reason);
	if (ended) return { kind: 'end-session', ended };
	if (reason === collabRejections.notAMember.reason || reason === collabRejections.unknownDocument.reason)
		return { kind: 'removed' };
	const name = nameOf(reason);
	if (name === collabRejections.outdatedClient.reason) return { kind: 'outdated' };
	if (name === collabRejections.unavailable.reason || name === collabRejections.rateLimited.reason)
		return { kind: 'retry-login' };
	return { kind: 'retry-once' };
}

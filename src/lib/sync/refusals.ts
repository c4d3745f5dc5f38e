import { collabRejections } from '../protocol/errors.ts';
import { sessionEndFromClose, type SessionEndReason } from '../protocol/user-channel.ts';
import { jitter, LOGIN_RETRY_MAX_MS, RETRY_MIN_MS, type RoomNotice } from './model.ts';

/**
 * What a room does about the server closing it or refusing its login, decided from the reason alone
 * (docs/protocol.md, the close-reason table). `Refusals` carries the action out.
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

/** What carrying out an action needs of its room. */
export interface RefusalHost {
	/** The session ended (signed out elsewhere, password changed, account deleted): the app signs out. */
	endSession(ended: SessionEndReason | 'unspecified'): void;
	/** This client is older than the server accepts. */
	outdated(reason: string): void;
	/** The user is not in the room (any more). */
	removed(): void;
	/** Rebuilds the local copy, or reopens when a rebuild is under way (its fresh copy wrote nothing yet). */
	rebuild(reason: string): void;
	/** Replaces the provider of the same document after `delayMs` (a new session: a new handshake). */
	reopenSoon(delayMs?: number): void;
	/** Shows a notice that clears itself on the next sync. */
	notice(notice: RoomNotice): void;
}

/** Carries out a room's actions, with the state of its login retries. */
export class Refusals {
	readonly #host: RefusalHost;
	#retryOnceAt = 0;
	/** The next wait before a room login refused for a passing reason (storage, rate) is tried again. */
	#backoffMs = RETRY_MIN_MS;

	constructor(host: RefusalHost) {
		this.#host = host;
	}

	/** A login succeeded: the next passing refusal is retried soon again. */
	loggedIn(): void {
		this.#backoffMs = RETRY_MIN_MS;
	}

	act(action: RoomAction, reason: string): void {
		const host = this.#host;
		switch (action.kind) {
			case 'end-session':
				host.endSession(action.ended);
				return;
			case 'removed':
				host.removed();
				return;
			case 'rebuild':
				host.rebuild(reason);
				return;
			case 'reopen':
				host.reopenSoon();
				return;
			case 'notice':
				host.notice({ kind: 'warning', text: action.text });
				return;
			case 'outdated':
				host.outdated(reason);
				host.notice({ kind: 'error', text: 'This version of Chat is too old for the server: reload.' });
				return;
			case 'retry-login': {
				// Soon, then less and less often, with jitter so that a node's clients do not all come back at once.
				host.notice({ kind: 'warning', text: storageNotice });
				const wait = jitter(this.#backoffMs);
				this.#backoffMs = Math.min(this.#backoffMs * 2, LOGIN_RETRY_MAX_MS);
				host.reopenSoon(wait);
				return;
			}
			case 'retry-once':
				// The token function refreshes on the next attempt. Re-attach, but not in a loop.
				if (Date.now() < this.#retryOnceAt) {
					host.notice({ kind: 'warning', text: 'Cannot open this room right now; retrying…' });
					return;
				}
				this.#retryOnceAt = Date.now() + 10_000;
				host.reopenSoon();
				return;
			case 'none':
		}
	}
}

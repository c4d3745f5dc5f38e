import type * as Y from 'yjs';
import { compareEvents, roomEvent, type RoomEvent } from '../protocol/events.ts';
import { limits } from '../protocol/limits.ts';
import type { RoomCopy } from './copy.ts';
import type { FailedMessage, RoomNotice } from './model.ts';

/** More rebuilds than this within the window means the rebuild itself is refused: stop. */
const REBUILD_LIMIT = 2;
const REBUILD_WINDOW_MS = 60_000;

/** What a rebuild reads and changes of its room. */
export interface RebuildHost {
	readonly roomId: string;
	readonly userId: string;
	copy(): RoomCopy;
	/**
	 * Closes the refused copy, deletes it from the device (it would re-send the refused update on every start)
	 * and opens a fresh one (a new Yjs client id); null when the room was closed meanwhile.
	 */
	replaceCopy(): Promise<RoomCopy | null>;
	/** `copy` is still the room's live copy (not replaced, the room not closed). */
	isCurrent(copy: RoomCopy): boolean;
	fail(failed: FailedMessage[]): void;
	isAcked(clientMsgId: string): boolean;
	keepHistory(archived: RoomEvent[]): void;
	/** The fresh copy holds what it should: show exactly that (with the history). */
	settle(): void;
	notify(notice: RoomNotice): void;
	/** The server's clock (ms). */
	now(): number;
}

/**
 * A room's rebuild, after the server refused an update of its document (RoomSync's class comment says why). Own
 * valid messages the server's copy lacks are carried over with their ids; invalid ones are kept as failed. Until
 * the fresh copy holds them, the room shows what it showed.
 */
export class Rebuilder {
	readonly #host: RebuildHost;
	#times: number[] = [];
	#running: Promise<void> | null = null;
	/** Events written while the rebuild has no document to write into; null when not rebuilding. */
	#late: RoomEvent[] | null = null;

	constructor(host: RebuildHost) {
		this.#host = host;
	}

	get running(): boolean {
		return this.#running !== null;
	}

	/** Keeps an event for the fresh copy while there is no document to write into; false when there is one. */
	hold(event: RoomEvent): boolean {
		this.#late?.push(event);
		return this.#late !== null;
	}

	/** Rebuilds, or joins the rebuild under way. */
	start(reason: string): Promise<void> {
		this.#running ??= this.#run(reason).finally(() => {
			this.#running = null;
		});
		return this.#running;
	}

	async #run(reason: string): Promise<void> {
		const host = this.#host;
		const now = Date.now();
		this.#times = this.#times.filter((t) => now - t < REBUILD_WINDOW_MS);
		this.#times.push(now);
		const looping = this.#times.length > REBUILD_LIMIT;
		console.warn(`room ${host.roomId}: update refused (${reason}); rebuilding the local copy`);
		this.#late = [];

		const horizon = host.now() + limits.maxClockSkewMs;
		const own = { roomId: host.roomId, userId: host.userId };
		const { carry, failed } = ownEntriesToCarry(host.copy().map.entries(), own, reason, horizon);
		if (looping) {
			for (const e of carry)
				if (e.kind === 'message')
					failed.push(failureOf(host.roomId, e.clientMsgId, e, 'refused repeatedly by the server'));
			carry.length = 0;
		}
		if (failed.length > 0) host.fail(failed);

		const fresh = await host.replaceCopy();
		carry.push(...(this.#late ?? []));
		this.#late = null;
		if (!fresh) return;
		// Writing a key the server's copy already holds would be refused as a duplicate: wait for that copy.
		// (It resolves at once when the copy stops syncing: the user was removed meanwhile.)
		await fresh.untilSynced();
		if (!host.isCurrent(fresh)) return;

		this.#writeAgain(fresh, carry);
		host.settle();
		host.notify(
			looping
				? {
						kind: 'error',
						text: 'The server keeps refusing changes in this room. Your unsent messages are marked as failed.',
					}
				: {
						kind: 'warning',
						text: 'Some of your changes were refused by the server; the room was reloaded. Your valid messages were kept.',
					},
		);
	}

	/** Writes the carried events into the fresh copy, except what the server holds or trimmed into history. */
	#writeAgain(fresh: RoomCopy, carry: RoomEvent[]): void {
		// (Own messages the fresh copy received from the server were marked acknowledged by the observer.)
		// Older than the server's window: trimmed into history, where the acknowledged ones already are. Writing
		// them again would bring them back into the document as new entries.
		const oldest = oldestMessage(fresh.map);
		const archived: RoomEvent[] = [];
		const again: RoomEvent[] = [];
		for (const event of carry) {
			// A key the server already holds must not be written again: that would be refused as a duplicate.
			if (fresh.map.has(event.clientMsgId)) continue;
			if (oldest && this.#host.isAcked(event.clientMsgId) && compareEvents(event, oldest) < 0)
				archived.push(event);
			else again.push(event);
		}
		// One transaction each, as they were first written: together they could exceed the server's update limit.
		for (const event of again) fresh.write(event);
		this.#host.keepHistory(archived);
	}
}

/*
 * The steps of a rebuild, as functions of what they read.
 */

/** An own entry that cannot be written again, kept to show its sender why (and to resend it by hand). */
export function failureOf(roomId: string, key: string, value: unknown, reason: string): FailedMessage {
	const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
	return {
		roomId,
		clientMsgId: key,
		content: typeof v.content === 'string' ? v.content : '(unreadable message)',
		createdAt: typeof v.createdAt === 'string' ? v.createdAt : new Date().toISOString(),
		...(typeof v.replyToId === 'string' ? { replyToId: v.replyToId } : {}),
		reason,
	};
}

/**
 * Sorts the own entries of a refused copy: those to write again into the fresh one, and those kept as failed
 * (invalid, or dated after `horizon`, the server clock plus the allowed skew). Others' entries come back from the
 * server. Acknowledged is not enough to skip one: an update that followed the refused one is stored and
 * acknowledged, but held pending by the server's Yjs and never shown to anyone. So every own entry the fresh copy
 * lacks is written again (the server's check for existing keys looks at its document; the mirror is idempotent).
 */
export function ownEntriesToCarry(
	entries: Iterable<[string, unknown]>,
	own: { roomId: string; userId: string },
	reason: string,
	horizon: number,
): { carry: RoomEvent[]; failed: FailedMessage[] } {
	const carry: RoomEvent[] = [];
	const failed: FailedMessage[] = [];
	const file = refusedFile(reason);
	for (const [key, value] of entries) {
		const mine =
			typeof value === 'object' && value !== null && 'senderId' in value && value.senderId === own.userId;
		const parsed = roomEvent.safeParse(value);
		if (parsed.success && parsed.data.senderId !== own.userId) continue;
		if (!parsed.success || parsed.data.clientMsgId !== key) {
			if (mine) failed.push(failureOf(own.roomId, key, value, `refused: ${reason}`));
			continue;
		}
		// The server named the file it refused: the own message that carries it fails, with why; the rest go again.
		if (
			file &&
			parsed.data.kind === 'message' &&
			parsed.data.attachments?.some((a) => a.id.startsWith(file.id))
		) {
			failed.push(failureOf(own.roomId, key, parsed.data, `the server refused its file: ${file.why}`));
			continue;
		}
		if (Date.parse(parsed.data.createdAt) > horizon) {
			// Only messages are kept as failed (to show and resend); a refused edit or reaction is dropped.
			if (parsed.data.kind === 'message')
				failed.push(
					failureOf(own.roomId, key, parsed.data, 'refused: its time is ahead of the server clock'),
				);
			continue;
		}
		carry.push(parsed.data);
	}
	return { carry, failed };
}

/**
 * The file a refusal names (server/collab/attachment-check.ts: `attachment <first 8 hex digits of its id>…: why`),
 * or null when the refusal is about something else.
 */
export function refusedFile(reason: string): { id: string; why: string } | null {
	const match = /attachment ([0-9a-f]{8})…: (.+)$/.exec(reason);
	return match ? { id: match[1] as string, why: match[2] as string } : null;
}

/** The oldest message a room's live document holds: older ones were trimmed into history by the server. */
export function oldestMessage(map: Y.Map<unknown>): RoomEvent | undefined {
	let oldest: RoomEvent | undefined;
	for (const value of map.values()) {
		const parsed = roomEvent.safeParse(value);
		if (
			parsed.success &&
			parsed.data.kind === 'message' &&
			(!oldest || compareEvents(parsed.data, oldest) < 0)
		)
			oldest = parsed.data;
	}
	return oldest;
}

import { compareOrder, roomEvent, type FoldedMessage, type RoomEvent } from '../protocol/events.ts';
import * as clock from './clock.ts';
import { serverConfig } from './server-config.svelte.ts';
import type { FailedMessage } from './store.ts';

/*
 * What a room shows and the small rules around it, shared by RoomStore and its helpers (room-reads, room-acks).
 */

/** Retries of passing failures (a refused login, an unanswered question) wait from 1 s up to 30 s. */
export const RETRY_MIN_MS = 1_000;
export const RETRY_MAX_MS = 30_000;
/** A refused login is retried at least every 4 s: the room is back within seconds of the server's database. */
export const LOGIN_RETRY_MAX_MS = 4_000;

/** `ms` give or take 30 %: clients that failed together do not all retry together. */
export function jitter(ms: number): number {
	return Math.round(ms * (0.7 + Math.random() * 0.6));
}

export type MessageStatus = 'pending' | 'synced' | 'failed';

/** One message as the view shows it. */
export interface ChatMessage {
	clientMsgId: string;
	senderId: string;
	content: string;
	createdAt: string;
	/** `createdAt` in ms, for ordering and day separators. */
	at: number;
	replyToId?: string;
	own: boolean;
	status: MessageStatus;
	/** Why it failed, for `failed` messages. */
	reason?: string;
	/** When it was last edited (ISO); the content is the edited text. */
	editedAt?: string;
	/** Deleted: by whom and when. The content is empty then. */
	deleted?: { by: string; at: string };
	/** Reactions in the order they were first given: emoji and who gave it. */
	reactions: { emoji: string; userIds: string[] }[];
}

/** The quick reactions offered under each message. */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '😢'] as const;

export interface RoomNotice {
	kind: 'info' | 'warning' | 'error';
	text: string;
}

export type RoomPhase = 'loading' | 'ready' | 'removed';

/** How the room list follows a room (see `Rooms.room`). */
export interface RoomStoreOptions {
	/** The user is no longer in this room: show the local copy read-only with this notice, never connect. */
	removedNotice?: string | null;
	/** The server said the user is not a member (the room's own close): the list decides what to show. */
	onRemoved?: () => void;
}

/** Normalises what the user typed into message content: NFC, no trailing whitespace. */
export function normaliseContent(text: string): string {
	return text.normalize('NFC').replace(/\s+$/u, '');
}

/**
 * The server's content filter, applied before writing (never write what the server would refuse): `mask` hides the
 * listed words, `reject` refuses the text with the words named.
 */
export function filtered(content: string): string {
	const filter = serverConfig.filter;
	if (filter.mode === 'mask') return filter.mask(content);
	const blocked = filter.blocked(content);
	if (blocked.length > 0) throw new Error(`This server does not accept these words: ${blocked.join(', ')}.`);
	return content;
}

export type NewEventFields = Record<string, unknown> & { kind: RoomEvent['kind'] };

/**
 * An own event, new: the content filtered, then validated with the shared schema (never write what the server
 * would refuse). Throws with a reason for the user.
 */
export function newEvent(fields: NewEventFields, senderId: string): RoomEvent {
	if (typeof fields.content === 'string') fields = { ...fields, content: filtered(fields.content) };
	const parsed = roomEvent.safeParse({
		...fields,
		clientMsgId: crypto.randomUUID(),
		senderId,
		createdAt: new Date(clock.serverNow()).toISOString(),
	});
	if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? 'This cannot be sent.');
	return parsed.data;
}

/** A folded event (the message with what later events did to it) as the view shows it. */
export function toChatMessage(
	{ event, content, editedAt, deleted, reactions }: FoldedMessage,
	userId: string,
): ChatMessage {
	return {
		clientMsgId: event.clientMsgId,
		senderId: event.senderId,
		content,
		createdAt: event.createdAt,
		at: Date.parse(event.createdAt),
		replyToId: event.replyToId,
		own: event.senderId === userId,
		status: 'synced',
		editedAt,
		deleted,
		reactions: [...reactions].map(([emoji, userIds]) => ({ emoji, userIds })),
	};
}

/**
 * The messages with the state of each own one: `synced` once acknowledged, `failed` when refused for good, else
 * `pending`. Refused messages no longer in the document are still shown to their sender, marked failed.
 */
export function withStatuses(
	events: readonly ChatMessage[],
	acked: ReadonlySet<string>,
	failed: ReadonlyMap<string, FailedMessage>,
	userId: string,
): ChatMessage[] {
	const out: ChatMessage[] = [];
	const seen = new Set<string>();
	for (const event of events) {
		seen.add(event.clientMsgId);
		if (!event.own) {
			out.push(event);
			continue;
		}
		const failure = failed.get(event.clientMsgId);
		const status: MessageStatus = acked.has(event.clientMsgId) ? 'synced' : failure ? 'failed' : 'pending';
		out.push({ ...event, status, reason: status === 'failed' ? failure?.reason : undefined });
	}
	let extra = false;
	for (const f of failed.values()) {
		if (seen.has(f.clientMsgId)) continue;
		extra = true;
		out.push({
			clientMsgId: f.clientMsgId,
			senderId: userId,
			content: f.content,
			createdAt: f.createdAt,
			at: Date.parse(f.createdAt) || 0,
			replyToId: f.replyToId,
			own: true,
			status: 'failed',
			reason: f.reason,
			reactions: [],
		});
	}
	if (extra) out.sort(compareOrder);
	return out;
}

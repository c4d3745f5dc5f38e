import { z } from './zod.ts';
import { collabRejections } from './errors.ts';
import { noNul, noNulMessage, role } from './api.ts';
import { idFromDocumentName, uuid } from './ids.ts';
import { mentionedName, mentionPattern } from './names.ts';
import { readJsonMessage } from './stateless.ts';

/**
 * The per-user live channel (docs/protocol.md, "The user channel"): everything around the rooms that is not a
 * room's content. A client opens the document `user:<its own user id>` on the same WebSocket as its rooms; only
 * that user may open it, always read-only, and the document itself stays empty. The server speaks on it with the
 * stateless messages below. Each (re)connect starts with a `state` holding the whole picture, so a client that
 * was away gets the state rather than a replay it may have missed; afterwards `room`, `room-activity` and
 * `room-removed` change one room, and `notify`, `presence` and `session-ended` report events.
 */

export const userDocumentPrefix = 'user:';

/** `user:<lower-case uuid>` → the uuid, or null when the name is not a user channel (no other spelling is). */
export function userIdFromDocumentName(name: string): string | null {
	return idFromDocumentName(userDocumentPrefix, name);
}

export function userDocumentName(userId: string): string {
	return `${userDocumentPrefix}${userId}`;
}

/**
 * When a room tells a member of a message from someone else: every message, only those that @mention them, or
 * never. Until a member chooses, a 1:1 room tells every message and a group only mentions.
 */
export const notifyLevels = ['all', 'mentions', 'none'] as const;
export const notifyLevel = z.enum(notifyLevels);
export type NotifyLevel = z.infer<typeof notifyLevel>;
export const notifySettingsBody = z.strictObject({ level: notifyLevel });

/** Postgres' `json_build_object` renders timestamps as `2026-11-25T20:30:00.123+00:00`: any parseable date. */
const timestamp = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'expected a timestamp');

/** A room's newest message as the room list shows it (content null: deleted). */
export const lastMessage = z.object({
	clientMsgId: uuid,
	senderId: uuid,
	senderName: z.string().nullable(),
	content: z.string().nullable(),
	createdAt: timestamp,
});
export type LastMessage = z.infer<typeof lastMessage>;

/** One of the user's rooms, as the channel reports it. */
export const roomState = z.object({
	id: uuid,
	name: z.string().nullable(),
	/** A group's topic (null when none; absent from servers before it existed). */
	topic: z.string().nullable().default(null),
	isGroup: z.boolean(),
	members: z.array(
		z.object({
			id: uuid,
			name: z.string(),
			role,
			lastSeen: timestamp.nullable().default(null),
			/** A device of theirs is connected (an app open anywhere), as the server knew when it sent this. */
			online: z.boolean().default(false),
		}),
	),
	/** The user's own role in the room. */
	role,
	lastMessage: lastMessage.nullable(),
	/** What orders the room list: the newest message's arrival, or when the user joined. */
	activityAt: timestamp,
	/** Messages of others after the user's read position (deleted ones not counted), capped at 999. */
	unread: z.number().int().min(0),
	/** Those of them that @mention the user. */
	mentions: z.number().int().min(0),
	notify: notifyLevel,
});
export type RoomState = z.infer<typeof roomState>;

export const sessionEndReasons = ['signed-out', 'password-changed', 'account-deleted'] as const;
export type SessionEndReason = (typeof sessionEndReasons)[number];

/** Messages the server sends on a user channel. Unknown types are for newer clients: ignore them. */
export const userChannelMessage = z.discriminatedUnion('type', [
	/** The whole picture, first thing after each (re)connect: replaces whatever the client held. */
	z.strictObject({
		type: z.literal('state'),
		protocolVersion: z.number().int().positive(),
		rooms: z.array(roomState),
	}),
	/** A room was added, or changed (its members, your role, its newest message, your unread count, settings). */
	z.strictObject({ type: z.literal('room'), room: roomState }),
	/**
	 * (Clients of protocol 5 or later; older ones get `room`.) A new message in a room, or your read position in it
	 * moved: its newest message, when it was active and your counts. Everything else about the room is as last sent.
	 */
	z.strictObject({
		type: z.literal('room-activity'),
		roomId: uuid,
		lastMessage: lastMessage.nullable(),
		activityAt: timestamp,
		unread: roomState.shape.unread,
		mentions: roomState.shape.mentions,
	}),
	/** You are no longer in this room: removed by someone, left, or the room is gone. */
	z.strictObject({
		type: z.literal('room-removed'),
		roomId: uuid,
		reason: z.enum(['removed', 'left', 'deleted']),
	}),
	/**
	 * A message you should hear about by your room's `notify` level (`all`: any message of someone else;
	 * `mentions`: one that @mentions you). Sent to every open device; each decides whether the room is in view.
	 */
	z.strictObject({
		type: z.literal('notify'),
		roomId: uuid,
		roomName: z.string().nullable(),
		isGroup: z.boolean(),
		clientMsgId: uuid,
		senderId: uuid,
		senderName: z.string(),
		content: z.string(),
		mention: z.boolean(),
	}),
	/**
	 * Someone you share a room with came online (their first device connected) or went offline (their last one
	 * left). Updates `online` of that member in every room of yours.
	 */
	z.strictObject({ type: z.literal('presence'), userId: uuid, online: z.boolean() }),
	/** This session is over (signed out, password changed elsewhere, account deleted): the socket closes next. */
	z.strictObject({ type: z.literal('session-ended'), reason: z.enum(sessionEndReasons) }),
]);
export type UserChannelMessage = z.infer<typeof userChannelMessage>;
export type RoomActivity = Extract<UserChannelMessage, { type: 'room-activity' }>;

/** A user channel's stateless payload, or null when it is not a message this version knows. */
export function readUserChannelMessage(payload: string): UserChannelMessage | null {
	return readJsonMessage(userChannelMessage, payload);
}

/**
 * The payload of a Web Push message (JSON, encrypted per RFC 8291): who wrote where, never what, unless the
 * subscription asked for previews (`text`).
 */
export const pushPayload = z.strictObject({
	type: z.literal('message'),
	roomId: uuid,
	roomName: z.string().nullable(),
	isGroup: z.boolean(),
	senderName: z.string(),
	mention: z.boolean(),
	clientMsgId: uuid,
	/** The page to open on click. */
	url: z.string(),
	text: z.string().optional(),
});
export type PushPayload = z.infer<typeof pushPayload>;

/** Unpadded base64url of exactly `bytes` bytes (a browser's `PushSubscription.toJSON()` gives this form). */
const base64Url = (bytes: number, what: string) => {
	const chars = Math.ceil((bytes * 4) / 3);
	return z
		.string()
		.transform((s) => s.replace(/=+$/, ''))
		.pipe(
			z
				.string()
				.regex(
					new RegExp(`^[A-Za-z0-9_-]{${chars}}$`),
					`expected ${what}: ${bytes} bytes in base64url (${chars} characters)`,
				),
		);
};

/** Hosts for which a push endpoint may be plain `http:` outside production (an in-test push service). */
export function isLoopbackHost(hostname: string): boolean {
	return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * The body of `POST /api/push/subscriptions`: a browser's `PushSubscription.toJSON()` plus whether its
 * notifications may show message text. The endpoint must be `https:`; `allowLoopbackHttp` (the server sets it
 * outside production) also admits `http:` to a loopback host, where the tests run their own push service.
 */
export function pushSubscriptionBodyFor(options: { allowLoopbackHttp: boolean }) {
	return z.strictObject({
		endpoint: z
			.url({ error: 'expected an absolute URL' })
			.max(2048, 'expected at most 2048 characters')
			.refine(
				(value) => {
					if (!URL.canParse(value)) return false;
					const url = new URL(value);
					if (url.username || url.password) return false;
					if (url.protocol === 'https:') return true;
					return options.allowLoopbackHttp && url.protocol === 'http:' && isLoopbackHost(url.hostname);
				},
				`expected an https: URL without credentials${options.allowLoopbackHttp ? ' (or http: to a loopback host)' : ''}`,
			),
		keys: z.strictObject({
			/** The subscription's P-256 public key, uncompressed (0x04 ‖ x ‖ y, so it starts with `B`). */
			p256dh: base64Url(65, 'an uncompressed P-256 public key').refine(
				(s) => s.startsWith('B'),
				'expected an uncompressed P-256 public key (starting with 0x04)',
			),
			/** The subscription's authentication secret. */
			auth: base64Url(16, 'a 16-byte auth secret'),
		}),
		previews: z.boolean().default(false),
	});
}
/** The strict form (https only), as production servers apply it. */
export const pushSubscriptionBody = pushSubscriptionBodyFor({ allowLoopbackHttp: false });
export type PushSubscriptionBody = z.input<typeof pushSubscriptionBody>;

/** The body of `DELETE /api/push/subscriptions`. */
export const pushUnsubscribeBody = z.strictObject({
	endpoint: z
		.string()
		.min(1, 'expected the endpoint')
		.max(2048, 'expected at most 2048 characters')
		.refine(noNul, noNulMessage),
});

/** The answer of `GET /api/push/key`: the server's VAPID public key (unpadded base64url of 65 bytes). */
export const pushKeyResponse = z.object({ publicKey: z.string().regex(/^B[A-Za-z0-9_-]{86}$/) });

/**
 * Whether `content` @mentions the member named `name` (names compared without case). The same rule as the
 * client's rendering (format.ts `mentionParts`): a name may be followed by `.` or `-` ending a sentence.
 */
export function mentionsName(content: string, name: string): boolean {
	const lower = name.toLowerCase();
	for (const match of content.matchAll(mentionPattern())) {
		if (mentionedName(match[2] as string, (candidate) => candidate === lower)) return true;
	}
	return false;
}

/**
 * A `session-ended` close names no reason (the channel's `session-ended` message, sent just before, does), or one
 * after a colon (`session-ended: password-changed`). Returns the reason, `unspecified`, or null when `closeReason`
 * is not a session end.
 */
export function sessionEndFromClose(closeReason: string): SessionEndReason | 'unspecified' | null {
	const [name, detail] = closeReason.split(':').map((part) => part.trim());
	if (name !== collabRejections.sessionEnded.reason) return null;
	return (sessionEndReasons as readonly string[]).includes(detail ?? '')
		? (detail as SessionEndReason)
		: 'unspecified';
}

import type { Logger } from 'pino';
import type { Db } from '../db/index.ts';
import * as rooms from '../data/rooms.ts';
import type { EventBus } from '../events/bus.ts';
import { mentionsName, type NotifyLevel, type PushPayload } from '#protocol/user-channel.ts';
import type { Devices } from './devices.ts';
import type { AcceptedEvents } from './durable-append.ts';

/**
 * Members whose names and notification levels a node keeps, over the rooms it heard from last (about 150 bytes
 * each): 10,000 rooms of ten, or a hundred rooms of a thousand. A node of 16,000 users in rooms of ten writes to
 * 1,600 rooms a minute, and a bound by rooms of 1,000 had every message ask the database again.
 */
const AUDIENCE_CACHE_MEMBERS = 100_000;
/** Push previews carry at most this much of a message. */
const PREVIEW_CHARS = 200;

/** Whether a member hears about a message at their level for the room. */
export function notifies(level: NotifyLevel, mentioned: boolean): boolean {
	return level === 'all' || (level === 'mentions' && mentioned);
}

export interface PushSender {
	sendToUser(userId: string, payload: PushPayload): Promise<unknown>;
}

type Audience = Awaited<ReturnType<typeof rooms.audience>>;

/**
 * What the node that stored new messages tells the others: it works out whom each message @mentions, publishes
 * the room's activity on the cluster bus (every node's user channels update their users' lists, counts and
 * notifications), and sends Web Push to the members who should hear of it and have no device connected anywhere.
 */
export class Activity {
	readonly #db: Db;
	readonly #log: Logger;
	readonly #bus: EventBus;
	readonly #devices: Devices;
	readonly #push: PushSender | undefined;
	/** By room, the room heard from last at the end; `members` counts once the answer is in. */
	readonly #audiences = new Map<string, { audience: Promise<Audience>; members: number }>();
	#audienceMembers = 0;
	readonly #audienceLimit: number;

	constructor(deps: {
		db: Db;
		log: Logger;
		bus: EventBus;
		devices: Devices;
		push?: PushSender;
		/** How many members the audience cache holds (AUDIENCE_CACHE_MEMBERS). */
		audienceCacheMembers?: number;
	}) {
		this.#db = deps.db;
		this.#log = deps.log.child({ component: 'activity' });
		this.#bus = deps.bus;
		this.#devices = deps.devices;
		this.#push = deps.push;
		this.#audienceLimit = deps.audienceCacheMembers ?? AUDIENCE_CACHE_MEMBERS;
		deps.bus.subscribe((event) => {
			if (event.type === 'membership' || event.type === 'notify-level') this.#forget(event.roomId);
		});
		deps.bus.onResync(() => {
			this.#audiences.clear();
			this.#audienceMembers = 0;
		});
	}

	/** DurableAppend calls this once an update's events are durable. Never throws; failures are logged. */
	accepted(accepted: AcceptedEvents): void {
		void this.#accepted(accepted).catch((error: unknown) =>
			this.#log.error({ err: error, roomId: accepted.roomId }, 'activity not published'),
		);
	}

	async #accepted({ roomId, writer, events }: AcceptedEvents): Promise<void> {
		const texts = events.flatMap((e) => (e.kind === 'message' ? [e] : []));
		const audience = texts.length > 0 ? await this.#audience(roomId) : undefined;
		const others = audience?.members.filter((m) => m.id !== writer.id) ?? [];
		const receivedAt = new Date().toISOString();
		const messages = texts.map((event) => ({
			clientMsgId: event.clientMsgId,
			content: event.content,
			createdAt: event.createdAt,
			receivedAt,
			mentions: event.content.includes('@')
				? others.filter((m) => mentionsName(event.content, m.name)).map((m) => m.id)
				: [],
		}));
		await this.#bus.publish({
			type: 'activity',
			roomId,
			writer,
			messages,
			others: events.length - texts.length,
		});
		if (this.#push && audience) await this.#pushTo(this.#push, roomId, writer, messages, others, audience);
	}

	/**
	 * Web Push of `messages` to the members who should hear of them and have no device connected anywhere: whose
	 * devices are connected is asked once for all of them (one Redis round trip), not once per member.
	 */
	async #pushTo(
		push: PushSender,
		roomId: string,
		writer: AcceptedEvents['writer'],
		messages: { clientMsgId: string; content: string; mentions: string[] }[],
		others: Audience['members'],
		audience: Audience,
	): Promise<void> {
		const due = messages.flatMap((message) =>
			others.flatMap((member) => {
				const mention = message.mentions.includes(member.id);
				return notifies(member.notify, mention) ? [{ message, member, mention }] : [];
			}),
		);
		if (due.length === 0) return;
		const online = await this.#devices.onlineOf([...new Set(due.map((d) => d.member.id))]);
		// Each recipient's push on its own: a slow push service delays no one else's.
		await Promise.all(
			due.flatMap(({ message, member, mention }) =>
				online.has(member.id)
					? []
					: [
							push.sendToUser(member.id, {
								type: 'message',
								roomId,
								roomName: audience.name,
								isGroup: audience.isGroup,
								senderName: writer.name,
								mention,
								clientMsgId: message.clientMsgId,
								url: `/rooms/${roomId}`,
								text: message.content.slice(0, PREVIEW_CHARS),
							}),
						],
			),
		);
	}

	/**
	 * The room's members and their levels, cached until a membership or a level changes (cluster events); the
	 * rooms heard from longest ago go first once the cache holds more members than its limit.
	 */
	#audience(roomId: string): Promise<Audience> {
		const cached = this.#audiences.get(roomId);
		if (cached) {
			this.#audiences.delete(roomId);
			this.#audiences.set(roomId, cached);
			return cached.audience;
		}
		const entry = { audience: rooms.audience(this.#db, roomId), members: 0 };
		this.#audiences.set(roomId, entry);
		entry.audience.then(
			(audience) => {
				if (this.#audiences.get(roomId) !== entry) return;
				entry.members = audience.members.length;
				this.#audienceMembers += entry.members;
				for (const [oldest] of this.#audiences) {
					if (this.#audienceMembers <= this.#audienceLimit || oldest === roomId) break;
					this.#forget(oldest);
				}
			},
			() => {
				if (this.#audiences.get(roomId) === entry) this.#forget(roomId);
			},
		);
		return entry.audience;
	}

	#forget(roomId: string): void {
		const entry = this.#audiences.get(roomId);
		if (!entry) return;
		this.#audiences.delete(roomId);
		this.#audienceMembers -= entry.members;
	}
}

import {
	compareOrder,
	foldEvents,
	type MessageEvent,
	type RoomEvent,
	type TargetedEvent,
} from '../protocol/events.ts';
import { failedToChatMessage, toChatMessage, type ChatMessage, type FailedMessage } from './model.ts';

/** The state of an own message, as the ack tracker knows it. */
export type StatusOf = (clientMsgId: string) => { status: ChatMessage['status']; reason?: string };

/** A batch bigger than this (or a first load) re-sorts the list instead of inserting one by one. */
const RESORT_OVER = 64;

interface Entry {
	message: MessageEvent;
	/** The edits, deletes and reactions that point at it, by id. */
	targeted: Map<string, TargetedEvent>;
	shown: ChatMessage | null;
}

/**
 * A room's messages as the view shows them, kept event by event: a new message is placed where it belongs, an
 * edit, delete or reaction refolds only the message it targets (with `foldEvents`, so the rules are the
 * protocol's), and an acknowledgement rebuilds only its message. Own messages carry their state; refused ones
 * the document no longer holds are shown too (`setFailed`).
 *
 * Changes are collected and applied on `list` (once per observer pass), which returns a new array when anything
 * changed and the same one otherwise.
 */
export class MessageView {
	readonly #userId: string;
	readonly #statusOf: StatusOf;
	/** Every event by id. */
	readonly #events = new Map<string, RoomEvent>();
	readonly #messages = new Map<string, Entry>();
	/** Targeted events whose message is not here (yet), by the message's id. */
	readonly #orphans = new Map<string, Map<string, TargetedEvent>>();
	/** Refused own messages, shown as failed while no event of theirs is here. */
	readonly #failed = new Map<string, FailedMessage>();
	/** What the list shows of those, by id. */
	readonly #ghosts = new Map<string, ChatMessage>();
	/** Display order. */
	#list: ChatMessage[] = [];
	#snapshot: ChatMessage[] | null = null;
	/** Messages to rebuild; those also in `#added` or `#removed` are (re)placed in the list. */
	readonly #dirty = new Set<string>();
	readonly #added = new Set<string>();
	readonly #removed = new Map<string, ChatMessage>();

	constructor(userId: string, statusOf: StatusOf) {
		this.#userId = userId;
		this.#statusOf = statusOf;
	}

	has(clientMsgId: string): boolean {
		return this.#events.has(clientMsgId);
	}

	get(clientMsgId: string): RoomEvent | undefined {
		return this.#events.get(clientMsgId);
	}

	/** Adds an event, or replaces the one with its id. */
	set(event: RoomEvent): void {
		const old = this.#events.get(event.clientMsgId);
		if (old === event) return;
		if (old) this.delete(old.clientMsgId);
		this.#events.set(event.clientMsgId, event);
		if (event.kind !== 'message') {
			const entry = this.#messages.get(event.targetId);
			if (entry) {
				entry.targeted.set(event.clientMsgId, event);
				this.#dirty.add(event.targetId);
			} else this.#orphan(event);
			return;
		}
		const id = event.clientMsgId;
		const targeted = this.#orphans.get(id) ?? new Map<string, TargetedEvent>();
		this.#orphans.delete(id);
		const ghost = this.#ghosts.get(id);
		this.#ghosts.delete(id);
		if (ghost || this.#added.has(id)) this.#unplace(id, ghost ?? null);
		this.#messages.set(id, { message: event, targeted, shown: null });
		this.#place(id);
	}

	/** Removes an event (an invalid replacement of a key); messages the server trims stay, as history. */
	delete(clientMsgId: string): void {
		const event = this.#events.get(clientMsgId);
		if (!event) return;
		this.#events.delete(clientMsgId);
		if (event.kind !== 'message') {
			const entry = this.#messages.get(event.targetId);
			if (entry?.targeted.delete(clientMsgId)) this.#dirty.add(event.targetId);
			else this.#orphans.get(event.targetId)?.delete(clientMsgId);
			return;
		}
		const entry = this.#messages.get(clientMsgId) as Entry;
		this.#messages.delete(clientMsgId);
		for (const t of entry.targeted.values()) this.#orphan(t);
		this.#unplace(clientMsgId, entry.shown);
		if (this.#failed.has(clientMsgId)) this.#place(clientMsgId);
	}

	/** Refused own messages: shown as failed, also when the document no longer holds them. */
	setFailed(failed: Iterable<FailedMessage>): void {
		for (const f of failed) {
			const known = this.#failed.has(f.clientMsgId);
			this.#failed.set(f.clientMsgId, f);
			if (known || this.#messages.has(f.clientMsgId)) this.refresh([f.clientMsgId]);
			else this.#place(f.clientMsgId);
		}
	}

	/** The state of these own messages changed (acknowledged, refused). */
	refresh(ids: Iterable<string>): void {
		for (const id of ids) if (this.#messages.has(id) || this.#failed.has(id)) this.#dirty.add(id);
	}

	/** Starts over from these events (after a rebuild); failed messages stay. */
	reset(events: Iterable<RoomEvent>): void {
		this.#events.clear();
		this.#messages.clear();
		this.#orphans.clear();
		this.#ghosts.clear();
		this.#dirty.clear();
		this.#added.clear();
		this.#removed.clear();
		this.#list = [];
		this.#snapshot = null;
		for (const id of this.#failed.keys()) this.#place(id);
		for (const e of events) this.set(e);
	}

	/** Every event held, of every kind. */
	events(): IterableIterator<RoomEvent> {
		return this.#events.values();
	}

	/** The messages in display order, with the changes since the last call applied. */
	get list(): readonly ChatMessage[] {
		if (this.#dirty.size > 0 || this.#removed.size > 0) this.#apply();
		return (this.#snapshot ??= this.#list.slice());
	}

	#orphan(event: TargetedEvent): void {
		let waiting = this.#orphans.get(event.targetId);
		if (!waiting) this.#orphans.set(event.targetId, (waiting = new Map()));
		waiting.set(event.clientMsgId, event);
	}

	#place(id: string): void {
		this.#dirty.add(id);
		this.#added.add(id);
	}

	/** Takes a message out of the list (`shown` is what the list holds of it, if anything). */
	#unplace(id: string, shown: ChatMessage | null): void {
		this.#dirty.delete(id);
		if (!this.#added.delete(id) && shown) this.#removed.set(id, shown);
		this.#snapshot = null;
	}

	/** Rebuilds what changed and (re)places it in the list. */
	#apply(): void {
		const placed: ChatMessage[] = [];
		const rebuilt = new Map<string, ChatMessage>();
		for (const id of this.#dirty) {
			const shown = this.#build(id);
			if (this.#added.has(id)) placed.push(shown);
			else rebuilt.set(id, shown);
		}
		const removed = new Set(this.#removed.values());
		const resort = placed.length + removed.size > RESORT_OVER || this.#list.length === 0;
		if (resort || !this.#spliceIn(removed, rebuilt, placed)) {
			const list = this.#list.filter((m) => !removed.has(m)).map((m) => rebuilt.get(m.clientMsgId) ?? m);
			list.push(...placed);
			this.#list = list.sort(compareOrder);
		}
		this.#dirty.clear();
		this.#added.clear();
		this.#removed.clear();
		this.#snapshot = null;
	}

	/** Applies a small change in place; false (with nothing changed) when a message is not where it should be. */
	#spliceIn(removed: Set<ChatMessage>, rebuilt: Map<string, ChatMessage>, placed: ChatMessage[]): boolean {
		const at = (m: ChatMessage) => this.#indexOf(m);
		if ([...removed].some((m) => at(m) < 0) || [...rebuilt.values()].some((m) => at(m) < 0)) return false;
		for (const m of removed) this.#list.splice(at(m), 1);
		for (const m of rebuilt.values()) this.#list[at(m)] = m;
		for (const m of placed) this.#list.splice(this.#insertionPoint(m), 0, m);
		return true;
	}

	/** The message as shown now: folded with what targets it, with its state when it is own. */
	#build(id: string): ChatMessage {
		const entry = this.#messages.get(id);
		let shown: ChatMessage;
		if (entry) {
			const [folded] = foldEvents([entry.message, ...entry.targeted.values()]).values();
			shown = toChatMessage(folded as NonNullable<typeof folded>, this.#userId);
			if (shown.own) Object.assign(shown, this.#statusOf(id));
			entry.shown = shown;
		} else {
			shown = failedToChatMessage(this.#failed.get(id) as FailedMessage, this.#userId);
			this.#ghosts.set(id, shown);
		}
		return shown;
	}

	/** Where `m` is in the list (binary search on the display order, which never changes for a message). */
	#indexOf(m: ChatMessage): number {
		const i = this.#insertionPoint(m);
		return this.#list[i]?.clientMsgId === m.clientMsgId ? i : -1;
	}

	#insertionPoint(m: ChatMessage): number {
		let low = 0;
		let high = this.#list.length;
		while (low < high) {
			const mid = (low + high) >>> 1;
			if (compareOrder(this.#list[mid] as ChatMessage, m) < 0) low = mid + 1;
			else high = mid;
		}
		return low;
	}
}

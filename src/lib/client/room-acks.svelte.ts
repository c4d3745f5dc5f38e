import type { HocuspocusProvider } from '@hocuspocus/provider';
import { SvelteMap, SvelteSet } from 'svelte/reactivity';
import type { RoomEvent } from '../protocol/events.ts';
import { pendingQuestions } from '../protocol/stateless.ts';
import { jitter, RETRY_MAX_MS, RETRY_MIN_MS } from './room-model.ts';
import type { FailedMessage, MetaStore } from './store.ts';

/** What the ack tracker needs of its room. */
export interface AckHost {
	readonly roomId: string;
	readonly userId: string;
	readonly meta: MetaStore;
	/** The room's valid events by key. */
	events(): Iterable<RoomEvent>;
	/** The provider the room uses now, unless the room is closed. */
	currentProvider(): HocuspocusProvider | undefined;
}

/**
 * The fate of own events: made durable by the server (its `ack`s) or refused for good (kept to show their sender),
 * both kept on the device; and the questions that get the acks a dropped connection lost: `pending`, after each
 * sync and each (re)authentication, then again with a growing wait for as long as any own event is
 * unacknowledged (docs/protocol.md section 6).
 */
export class AckTracker {
	readonly acked = new SvelteSet<string>();
	/** Own messages refused for good, by id: never asked about. */
	readonly failed = new SvelteMap<string, FailedMessage>();
	readonly #host: AckHost;
	#timer: ReturnType<typeof setTimeout> | undefined;
	#delayMs = RETRY_MIN_MS;

	constructor(host: AckHost) {
		this.#host = host;
	}

	/** Marks these ids acknowledged, here and on the device. */
	ack(ids: string[]): void {
		const fresh = ids.filter((id) => !this.acked.has(id));
		if (fresh.length === 0) return;
		for (const id of fresh) this.acked.add(id);
		void this.#host.meta
			.addAcked(this.#host.roomId, fresh)
			.catch((error: unknown) => console.warn('cannot save acks', error));
	}

	/** What the device kept from earlier sessions. */
	restore(acked: string[], failed: FailedMessage[]): void {
		for (const id of acked) this.acked.add(id);
		for (const f of failed) this.failed.set(f.clientMsgId, f);
	}

	/** Marks own messages refused for good, here and on the device. */
	fail(failed: FailedMessage[]): void {
		for (const f of failed) this.failed.set(f.clientMsgId, f);
		void this.#host.meta
			.addFailed(failed)
			.catch((error: unknown) => console.warn('cannot save failures', error));
	}

	/** Own events neither acknowledged nor refused for good. */
	unacked(): string[] {
		const ids: string[] = [];
		for (const e of this.#host.events())
			if (
				e.senderId === this.#host.userId &&
				!this.acked.has(e.clientMsgId) &&
				!this.failed.has(e.clientMsgId)
			)
				ids.push(e.clientMsgId);
		return ids;
	}

	/**
	 * Asks the server which of our unacknowledged messages it already holds: if the node that stored one died
	 * before acking it, the sync does not carry it again and no ack would ever come.
	 */
	ask(provider: HocuspocusProvider): void {
		for (const question of pendingQuestions(this.unacked())) provider.sendStateless(question);
	}

	/**
	 * Asks soon, and again with a growing wait (1 s to 30 s, with jitter) for as long as any remain. A provider can
	 * reconnect without ever emitting `synced` again (a node frozen for 40 s: issue 17); the answers then still
	 * come, as acks, because the question does not wait for `synced`.
	 */
	keepAsking(provider: HocuspocusProvider, restart = false): void {
		if (restart) this.#delayMs = RETRY_MIN_MS;
		clearTimeout(this.#timer);
		this.#timer = setTimeout(() => {
			this.#timer = undefined;
			if (provider !== this.#host.currentProvider() || this.unacked().length === 0) return;
			this.ask(provider);
			this.#delayMs = Math.min(this.#delayMs * 2, RETRY_MAX_MS);
			this.keepAsking(provider);
		}, jitter(this.#delayMs));
	}

	close(): void {
		clearTimeout(this.#timer);
	}
}

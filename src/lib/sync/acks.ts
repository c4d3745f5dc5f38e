import { pendingQuestions } from '../protocol/stateless.ts';
import { jitter, RETRY_MAX_MS, RETRY_MIN_MS, type FailedMessage } from './model.ts';
import type { Link, SyncMeta } from './ports.ts';

/** What the ack tracker needs of its room. */
export interface AckHost {
	readonly roomId: string;
	readonly userId: string;
	readonly meta: SyncMeta;
	/** The link the room uses now, unless the room is closed. */
	currentLink(): Link | undefined;
	/** The state of these own events changed. */
	changed(ids: string[]): void;
}

/**
 * The fate of own events: made durable by the server (its `ack`s) or refused for good (kept to show their sender),
 * both kept on the device; and the questions that get the acks a dropped connection lost: `pending`, after each
 * sync and each (re)authentication, then again with a growing wait for as long as any own event is
 * unacknowledged (docs/protocol.md section 6). One model: an own event is acked, failed, or pending.
 */
export class AckTracker {
	readonly acked = new Set<string>();
	/** Own messages refused for good, by id: never asked about. */
	readonly failed = new Map<string, FailedMessage>();
	/** Own events of the live document neither acknowledged nor refused. */
	readonly #open = new Set<string>();
	readonly #host: AckHost;
	#timer: ReturnType<typeof setTimeout> | undefined;
	#delayMs = RETRY_MIN_MS;

	constructor(host: AckHost) {
		this.#host = host;
	}

	/** Marks these ids acknowledged, here and on the device. */
	ack(ids: Iterable<string>): void {
		const fresh = [...ids].filter((id) => !this.acked.has(id));
		if (fresh.length === 0) return;
		for (const id of fresh) {
			this.acked.add(id);
			this.#open.delete(id);
		}
		this.#host.changed(fresh);
		void this.#host.meta
			.addAcked(this.#host.roomId, fresh)
			.catch((error: unknown) => console.warn('cannot save acks', error));
	}

	/** What the device kept from earlier sessions. */
	restore(acked: string[], failed: FailedMessage[]): void {
		for (const id of acked) this.acked.add(id);
		for (const f of failed) this.failed.set(f.clientMsgId, f);
		for (const id of this.#open) if (this.acked.has(id) || this.failed.has(id)) this.#open.delete(id);
		this.#host.changed([...acked, ...failed.map((f) => f.clientMsgId)]);
	}

	/** Marks own messages refused for good, here and on the device. */
	fail(failed: FailedMessage[]): void {
		for (const f of failed) {
			this.failed.set(f.clientMsgId, f);
			this.#open.delete(f.clientMsgId);
		}
		this.#host.changed(failed.map((f) => f.clientMsgId));
		void this.#host.meta
			.addFailed(failed)
			.catch((error: unknown) => console.warn('cannot save failures', error));
	}

	/** The state of an own event. */
	statusOf(id: string): { status: 'pending' | 'synced' | 'failed'; reason?: string } {
		if (this.acked.has(id)) return { status: 'synced' };
		const failure = this.failed.get(id);
		return failure ? { status: 'failed', reason: failure.reason } : { status: 'pending' };
	}

	/** An own event is in the live document (`present`), or left it. */
	track(id: string, present: boolean): void {
		if (!present) this.#open.delete(id);
		else if (!this.acked.has(id) && !this.failed.has(id)) this.#open.add(id);
	}

	/** The live document was replaced (a rebuild): its own events are tracked again as they arrive. */
	untrackAll(): void {
		this.#open.clear();
	}

	/** Own events of the live document neither acknowledged nor refused for good. */
	unacked(): string[] {
		return [...this.#open];
	}

	get pendingCount(): number {
		return this.#open.size;
	}

	/**
	 * Asks the server which of our unacknowledged messages it already holds: if the node that stored one died
	 * before acking it, the sync does not carry it again and no ack would ever come.
	 */
	ask(link: Link): void {
		for (const question of pendingQuestions(this.unacked())) link.sendStateless(question);
	}

	/**
	 * Asks soon, and again with a growing wait (1 s to 30 s, with jitter) for as long as any remain. A link can
	 * reconnect without ever syncing again (a node frozen for 40 s: issue 17); the answers then still come, as
	 * acks, because the question does not wait for a sync.
	 */
	keepAsking(link: Link, restart = false): void {
		if (restart) this.#delayMs = RETRY_MIN_MS;
		clearTimeout(this.#timer);
		this.#timer = setTimeout(() => {
			this.#timer = undefined;
			if (link !== this.#host.currentLink() || this.unacked().length === 0) return;
			this.ask(link);
			this.#delayMs = Math.min(this.#delayMs * 2, RETRY_MAX_MS);
			this.keepAsking(link);
		}, jitter(this.#delayMs));
	}

	close(): void {
		clearTimeout(this.#timer);
	}
}

import { afterPaint } from './frames.ts';
import type { ChatMessage } from './room-model.ts';
import type { MetaStore } from './store.ts';

/** How many of the newest messages are kept to paint a room at once: more than one screen holds. */
const SCREEN_MESSAGES = 60;
/** Saved at most this often while messages come in, and when the room closes. */
const SAVE_DELAY_MS = 1_000;

/**
 * What a room showed last (its newest messages, folded, with their states), kept on the device so that opening the
 * room paints them at once, before its document is read from IndexedDB, validated and folded (hundreds of ms for
 * a long room). Replaced by the real messages as soon as those are ready.
 */
export class RoomScreen {
	/** The saved messages, until the room's own are ready; null when there were none or they were replaced. */
	shown = $state.raw<ChatMessage[] | null>(null);
	readonly #roomId: string;
	readonly #meta: MetaStore;
	#timer: ReturnType<typeof setTimeout> | undefined;
	#latest: (() => ChatMessage[]) | null = null;
	#replaced = false;
	/** Resolves once the saved screen is read and painted (or there was none): the room's real load may start. */
	readonly painted: Promise<void>;

	constructor(roomId: string, meta: MetaStore) {
		this.#roomId = roomId;
		this.#meta = meta;
		this.painted = meta
			.screen(roomId)
			.then((messages) => {
				if (!this.#replaced && messages.length > 0) this.shown = messages;
			})
			.catch((error: unknown) => console.warn('cannot read the saved screen', error))
			.then(afterPaint);
	}

	/** The room's own messages are ready: they are shown from now on, and kept for next time. */
	replace(messages: () => ChatMessage[]): void {
		this.#replaced = true;
		this.shown = null;
		this.saveSoon(messages);
	}

	/** Keeps the newest of `messages()` on the device, a moment from now. */
	saveSoon(messages: () => ChatMessage[]): void {
		this.#latest = messages;
		this.#timer ??= setTimeout(() => this.#save(), SAVE_DELAY_MS);
	}

	/** Saves what is pending now (the room is closing). */
	close(): void {
		if (this.#timer !== undefined) this.#save();
	}

	#save(): void {
		clearTimeout(this.#timer);
		this.#timer = undefined;
		const latest = this.#latest?.();
		if (!latest) return;
		void this.#meta
			.saveScreen(this.#roomId, latest.slice(-SCREEN_MESSAGES))
			.catch((error: unknown) => console.warn('cannot save the screen', error));
	}
}

import type { Link } from '../sync/ports.ts';
import { awarenessState, type AwarenessState } from '../protocol/awareness.ts';

/** Typing stops being announced after this long without a keystroke. */
const TYPING_IDLE_MS = 3_000;

interface Peer {
	clientId: number;
	state: AwarenessState;
}

/** Who has a room open and who is typing there (awareness), and this user's own typing. */
export class PresenceTracker {
	#peers = $state.raw<Peer[]>([]);
	#typingTimer: ReturnType<typeof setTimeout> | undefined;
	readonly #userId: string;
	/** The room's link, unless the room is closed. */
	readonly #link: () => Link | undefined;

	/** User ids with the room open right now (any of their devices), this user included. */
	readonly onlineUserIds: Set<string> = $derived(new Set(this.#peers.map((p) => p.state.user.id)));

	/** Others typing now, by name. */
	readonly typingNames: string[] = $derived(
		[
			...new Set(
				this.#peers
					.filter((p) => p.state.typing && p.state.user.id !== this.#userId)
					.map((p) => p.state.user.name),
			),
		].sort(),
	);

	constructor(userId: string, link: () => Link | undefined) {
		this.#userId = userId;
		this.#link = link;
	}

	/** Announces typing; it turns itself off after a few idle seconds. */
	setTyping(typing: boolean): void {
		clearTimeout(this.#typingTimer);
		const awareness = this.#link()?.awareness;
		if (!awareness) return;
		if (awareness.getLocalState()?.typing !== typing) awareness.setLocalStateField('typing', typing);
		if (typing) this.#typingTimer = setTimeout(() => this.setTyping(false), TYPING_IDLE_MS);
	}

	/** Reads the peers' states again (on every awareness change); states of another shape are left out. */
	readPeers(): void {
		const awareness = this.#link()?.awareness;
		if (!awareness) return;
		const peers: Peer[] = [];
		for (const [clientId, state] of awareness.getStates()) {
			const parsed = awarenessState.safeParse(state);
			if (parsed.success) peers.push({ clientId, state: parsed.data });
		}
		this.#peers = peers;
	}

	close(): void {
		clearTimeout(this.#typingTimer);
	}
}

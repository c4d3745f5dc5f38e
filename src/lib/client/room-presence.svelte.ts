import type { Link } from '../sync/ports.ts';
import { presenceOf } from '../sync/hocuspocus.ts';
import { awarenessState, type AwarenessState } from '../protocol/awareness.ts';

/** Typing stops being announced after this long without a keystroke. */
const TYPING_IDLE_MS = 3_000;

interface Peer {
	clientId: number;
	state: AwarenessState;
}

/**
 * Who has a room on screen and who is typing there (awareness), this user's own presence and typing. The app keeps
 * many rooms open at once; only the one on screen publishes the user's presence (`show`), so a room in the
 * background costs no renewals every 15 s, for this device, the server or the room's members. Whether a member is
 * online at all comes from the user channel.
 */
export class PresenceTracker {
	#peers = $state.raw<Peer[]>([]);
	#typingTimer: ReturnType<typeof setTimeout> | undefined;
	readonly #user: { id: string; name: string };
	/** The room's link, unless the room is closed. */
	readonly #link: () => Link | undefined;

	/** User ids with the room on screen right now (any of their devices), this user included. */
	readonly onlineUserIds: Set<string> = $derived(new Set(this.#peers.map((p) => p.state.user.id)));

	/** Others typing now, by name. */
	readonly typingNames: string[] = $derived(
		[
			...new Set(
				this.#peers
					.filter((p) => p.state.typing && p.state.user.id !== this.#user.id)
					.map((p) => p.state.user.name),
			),
		].sort(),
	);

	constructor(user: { id: string; name: string }, link: () => Link | undefined) {
		this.#user = user;
		this.#link = link;
	}

	/**
	 * Publishes the user's presence while the room is on screen, and takes it back (at once, for everyone) when it
	 * is not. A provider opened later starts the same way (HocuspocusTransport's `shown`).
	 */
	show(shown: boolean): void {
		const awareness = this.#link()?.awareness;
		if (!awareness || (awareness.getLocalState() !== null) === shown) return;
		if (!shown) clearTimeout(this.#typingTimer);
		awareness.setLocalState(shown ? presenceOf(this.#user) : null);
	}

	/** Announces typing; it turns itself off after a few idle seconds. */
	setTyping(typing: boolean): void {
		clearTimeout(this.#typingTimer);
		const awareness = this.#link()?.awareness;
		const state = awareness?.getLocalState();
		// Off screen (no presence): nothing to announce.
		if (!awareness || !state) return;
		if (state.typing !== typing) awareness.setLocalStateField('typing', typing);
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

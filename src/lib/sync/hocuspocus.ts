import { HocuspocusProvider, type HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import type * as Y from 'yjs';
import { colorFor } from '../protocol/awareness.ts';
import { roomDocumentName } from '../protocol/ids.ts';
import type { Link, LinkEvents, Transport } from './ports.ts';

export interface HocuspocusTransportOptions {
	/** The socket the room's providers share (read on each open: the app creates it on first use). */
	socket(): HocuspocusProviderWebsocket;
	/** The access token, asked again on every (re)connect and whenever the server asks for a fresh one. */
	token: string | null | (() => string) | (() => Promise<string>);
	/** Who this is in the room's awareness; none: no awareness fields are set. */
	user?: { id: string; name: string };
	/**
	 * Whether `roomId` is on screen (asked as each provider opens; default: every room is). Only then does its
	 * awareness hold the user's presence: a room open in the background sends no state and no renewals.
	 */
	shown?: (roomId: string) => boolean;
}

/** The presence a room on screen publishes (the server rewrites the id and name from the login anyway). */
export function presenceOf(user: { id: string; name: string }) {
	return { user: { id: user.id, name: user.name, color: colorFor(user.id) }, typing: false };
}

/** A link that is a Hocuspocus provider on a shared socket. */
export class HocuspocusLink implements Link {
	readonly provider: HocuspocusProvider;

	constructor(provider: HocuspocusProvider) {
		this.provider = provider;
	}

	get origin(): unknown {
		return this.provider;
	}
	get isSynced(): boolean {
		return this.provider.isSynced;
	}
	get awareness() {
		return this.provider.awareness;
	}
	sendStateless(payload: string): void {
		this.provider.sendStateless(payload);
	}
	destroy(): void {
		this.provider.destroy();
	}
}

/**
 * The transport of the app and of the tests' Node clients: one Hocuspocus provider per room session, on a
 * socket shared by all rooms. Each provider gets its own session on the socket (`sessionAwareness`), so the
 * server's late answers to a provider that was replaced (a refusal in flight, the close of the old session) never
 * reach its successor.
 */
export class HocuspocusTransport implements Transport {
	readonly #options: HocuspocusTransportOptions;

	constructor(options: HocuspocusTransportOptions) {
		this.#options = options;
	}

	open(roomId: string, doc: Y.Doc, events: LinkEvents): HocuspocusLink {
		const { socket, token, user, shown } = this.#options;
		const provider = new HocuspocusProvider({
			websocketProvider: socket(),
			name: roomDocumentName(roomId),
			document: doc,
			sessionAwareness: true,
			token,
		});
		provider.on('synced', () => events.synced());
		provider.on('status', ({ status }: { status: string }) => {
			if (status !== 'connected') events.offline();
		});
		provider.on('close', ({ event }: { event: { code: number; reason: string } }) =>
			events.closed(event.reason ?? ''),
		);
		provider.on('authenticated', ({ scope }: { scope: string }) =>
			events.authenticated(scope === 'readonly'),
		);
		provider.on('authenticationFailed', ({ reason }: { reason: string }) => events.loginRefused(reason));
		provider.on('stateless', ({ payload }: { payload: string }) => events.stateless(payload));
		provider.on('awarenessChange', () => events.awareness());
		if (user) provider.awareness?.setLocalState((shown?.(roomId) ?? true) ? presenceOf(user) : null);
		provider.attach();
		return new HocuspocusLink(provider);
	}
}

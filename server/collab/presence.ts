import type { beforeHandleAwarenessPayload, beforeHandleMessagePayload, Extension } from '@hocuspocus/server';
import * as decoding from 'lib0/decoding';
import type { Logger } from 'pino';
import { removeAwarenessStates } from 'y-protocols/awareness';
import { colorFor } from '../../src/lib/protocol/awareness.ts';
import type { CollabContext } from './authentication.ts';

const AWARENESS_MESSAGE = 1;
/** A presence state is a name, a colour and a flag; anything bigger is not one. */
const MAX_STATE_BYTES = 2048;

/**
 * Presence that tells the truth: every awareness state a connection sends is rewritten to
 * `{ user: { id, name, color }, typing }` with the identity of the authenticated user, unknown fields
 * and oversized states are dropped, a connection cannot write the awareness client id of another
 * connection, and an explicit leave (state `null`) removes the user at once — Hocuspocus 4.7 alone
 * keeps them "online" until the 30 s timeout.
 */
export class Presence implements Extension {
	readonly extensionName = 'presence';
	readonly #log: Logger;

	constructor(log: Logger) {
		this.#log = log.child({ component: 'presence' });
	}

	async beforeHandleAwareness({
		states,
		context,
		connection,
		document,
	}: beforeHandleAwarenessPayload<CollabContext>) {
		if (!context?.user || !connection) return;
		const ownedElsewhere = new Set<number>();
		for (const [other, entry] of document.connections) {
			if (other !== connection) for (const id of entry.clients) ownedElsewhere.add(id);
		}
		for (const [clientId, state] of states) {
			if (ownedElsewhere.has(clientId)) {
				states.delete(clientId);
				this.#log.warn({ userId: context.user.id, clientId }, 'awareness for another connection dropped');
				continue;
			}
			const size = JSON.stringify(state ?? null).length;
			if (typeof state !== 'object' || state === null || size > MAX_STATE_BYTES) {
				states.delete(clientId);
				this.#log.warn(
					{ userId: context.user.id, bytes: size },
					'malformed or oversized awareness state dropped',
				);
				continue;
			}
			const user = (state as { user?: { color?: unknown } }).user;
			const color =
				typeof user?.color === 'string' && /^#[0-9a-f]{6}$/i.test(user.color)
					? user.color
					: colorFor(context.user.id);
			states.set(clientId, {
				user: { id: context.user.id, name: context.user.name, color },
				typing: (state as { typing?: unknown }).typing === true,
			});
		}
	}

	/** Applies a client's explicit leave (an awareness state of `null` for its own client id) at once. */
	async beforeHandleMessage({ connection, document, update }: beforeHandleMessagePayload<CollabContext>) {
		const left = readLeftClients(update);
		if (left.length === 0) return;
		const own = document.connections.get(connection)?.clients;
		const ids = left.filter((id) => own?.has(id));
		if (ids.length > 0) removeAwarenessStates(document.awareness, ids, { source: 'connection', connection });
	}
}

/** Client ids whose state is `null` in an awareness frame; [] for any other or malformed frame. */
function readLeftClients(frame: Uint8Array): number[] {
	try {
		const decoder = decoding.createDecoder(frame);
		decoding.readVarString(decoder);
		if (decoding.readVarUint(decoder) !== AWARENESS_MESSAGE) return [];
		const update = decoding.createDecoder(decoding.readVarUint8Array(decoder));
		const count = decoding.readVarUint(update);
		const left: number[] = [];
		for (let i = 0; i < count && i < 64; i++) {
			const clientId = decoding.readVarUint(update);
			decoding.readVarUint(update);
			if (decoding.readVarString(update) === 'null') left.push(clientId);
		}
		return left;
	} catch {
		// Not a well-formed awareness frame: Hocuspocus itself rejects or ignores it.
		return [];
	}
}

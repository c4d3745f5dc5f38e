/**
 * A thin Hocuspocus client for `npm run bench:capacity`: it speaks the wire protocol itself (as a bot would, see
 * docs/protocol.md) so that one load-generator process can hold thousands of users. It keeps no copy of the room:
 * it asks for the room on connect (sync step 1 with an empty state vector), finds the ids of the messages in each
 * update the server relays, and writes its own messages from a private document that holds only what it wrote, so
 * each update it sends depends on nothing of anyone else's, as a real client's new message does.
 *
 * With `userChannel`, it also opens the user's channel (`user:<id>`, docs/protocol.md section 10) on the same
 * socket, as every signed-in web client does, and counts what the server says there.
 */
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as Y from 'yjs';
import type { BenchMessage } from './client.ts';

const Msg = { Sync: 0, Awareness: 1, Auth: 2, Stateless: 5 } as const;
const SYNC_STEP_1 = 0;
const SYNC_STEP_2 = 1;
const SYNC_UPDATE = 2;
const SYNC_STATUS = 8;
const AUTH_TOKEN = 0;
const AUTH_AUTHENTICATED = 2;
/** The stamped message ids of bench/client.ts (`stampedId`): version 8, time first. */
const STAMPED_ID = /[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/g;
const latin1 = new TextDecoder('latin1');

export interface ThinEvents {
	/** A message of another member arrived (the id of each one in a relayed update). */
	message(clientMsgId: string): void;
	/** The server acknowledged messages of this client as durable (ours), or applied its update (bare). */
	acked(clientMsgIds: string[]): void;
	/** The connection was refused, or closed without being asked to. */
	failed(reason: string): void;
	/** A message on the user channel (its `type`: state, room, notify, presence…). */
	channel?(type: string): void;
}

export class ThinClient {
	readonly #name: string;
	/** The user channel's document name, when this client opened one. */
	readonly #channel: string | null;
	readonly #ws: WebSocket;
	readonly #doc: Y.Doc;
	readonly #events: ThinEvents;
	#awarenessClock = 0;
	/** The channel's own presence (the web client's channel provider has one, as every provider does). */
	readonly #channelPresence: { clientId: number; clock: number } | null;
	#synced = false;
	#closing = false;
	/**
	 * What each sync status still due will confirm, in order: the id of a message written, or every message
	 * unconfirmed when a sync step 2 went out (it carries all of them). Bare Hocuspocus has no other ack.
	 */
	readonly #statuses: string[][] = [];
	readonly #unconfirmed: Set<string>;

	/**
	 * `doc` holds what this user wrote (kept across reconnects, as a device keeps it), `unconfirmed` the ids of
	 * those not confirmed yet: the sync step 2 that answers the server's sync step 1 re-sends them.
	 */
	constructor(
		url: string,
		documentName: string,
		token: string,
		events: ThinEvents,
		{
			doc,
			unconfirmed,
			userChannel,
			channelPresence = false,
		}: { doc: Y.Doc; unconfirmed: Set<string>; userChannel?: string; channelPresence?: boolean },
	) {
		this.#channel = userChannel ? `user:${userChannel}` : null;
		this.#channelPresence =
			userChannel && channelPresence ? { clientId: new Y.Doc().clientID, clock: 0 } : null;
		this.#doc = doc;
		this.#unconfirmed = unconfirmed;
		this.#name = documentName;
		this.#events = events;
		this.#ws = new WebSocket(url);
		this.#ws.binaryType = 'arraybuffer';
		this.#ws.addEventListener('open', () => {
			for (const name of [this.#name, this.#channel]) {
				if (name === null) continue;
				this.#send(
					Msg.Auth,
					(e) => {
						encoding.writeVarUint(e, AUTH_TOKEN);
						encoding.writeVarString(e, token);
						encoding.writeVarString(e, '4.8.0');
					},
					name,
				);
			}
		});
		this.#ws.addEventListener('message', (event) => this.#receive(new Uint8Array(event.data as ArrayBuffer)));
		this.#ws.addEventListener('close', (event) => {
			if (!this.#closing) events.failed(`closed ${event.code} ${event.reason}`);
		});
	}

	get synced(): boolean {
		return this.#synced;
	}

	/** Where a client that has not synced is stuck: for the report of users who did not connect. */
	get stage(): 'connecting' | 'authenticating' | 'syncing' | 'synced' | 'closed' {
		if (this.#synced) return 'synced';
		if (this.#ws.readyState === WebSocket.CONNECTING) return 'connecting';
		if (this.#ws.readyState !== WebSocket.OPEN) return 'closed';
		return this.#authenticated ? 'syncing' : 'authenticating';
	}

	#authenticated = false;

	/** Writes a message as one update (its own new key in `messages`). */
	write(message: BenchMessage): void {
		const before = Y.encodeStateVector(this.#doc);
		this.#doc.getMap('messages').set(message.clientMsgId, message);
		const update = Y.encodeStateAsUpdate(this.#doc, before);
		this.#unconfirmed.add(message.clientMsgId);
		this.#statuses.push([message.clientMsgId]);
		this.#send(Msg.Sync, (e) => {
			encoding.writeVarUint(e, SYNC_UPDATE);
			encoding.writeVarUint8Array(e, update);
		});
	}

	/** Sends this client's presence: typing or not (also its 15-s renewal). */
	presence(typing: boolean): void {
		const state = JSON.stringify({ user: { name: 'bench' }, typing });
		this.#sendAwareness(this.#doc.clientID, ++this.#awarenessClock, state, this.#name);
	}

	/**
	 * Renews the channel's presence, as the web client's channel provider does every 15 s (y-protocols renews the
	 * empty state every provider starts with) while no live room is on screen: the socket's heartbeat then.
	 */
	renewChannel(): void {
		const presence = this.#channelPresence;
		if (presence && this.#channel)
			this.#sendAwareness(presence.clientId, ++presence.clock, '{}', this.#channel);
	}

	#sendAwareness(clientId: number, clock: number, state: string, name: string): void {
		const update = encoding.createEncoder();
		encoding.writeVarUint(update, 1);
		encoding.writeVarUint(update, clientId);
		encoding.writeVarUint(update, clock);
		encoding.writeVarString(update, state);
		this.#send(Msg.Awareness, (e) => encoding.writeVarUint8Array(e, encoding.toUint8Array(update)), name);
	}

	/** Reports a read position (ours: the `read` stateless message). */
	read(clientMsgId: string): void {
		const position = { at: new Date().toISOString(), clientMsgId };
		this.#send(Msg.Stateless, (e) => encoding.writeVarString(e, JSON.stringify({ type: 'read', position })));
	}

	close(): void {
		this.#closing = true;
		this.#ws.close();
	}

	#send(type: number, body: (encoder: encoding.Encoder) => void, name = this.#name): void {
		if (this.#ws.readyState !== WebSocket.OPEN) return;
		const encoder = encoding.createEncoder();
		encoding.writeVarString(encoder, name);
		encoding.writeVarUint(encoder, type);
		body(encoder);
		this.#ws.send(encoding.toUint8Array(encoder));
	}

	#receive(frame: Uint8Array): void {
		const decoder = decoding.createDecoder(frame);
		const name = decoding.readVarString(decoder);
		const type = decoding.readVarUint(decoder);
		if (name === this.#channel) this.#receiveOnChannel(type, decoder);
		else if (type === Msg.Sync) {
			const step = decoding.readVarUint(decoder);
			if (step === SYNC_UPDATE) {
				const ids = new Set(latin1.decode(frame).match(STAMPED_ID));
				for (const id of ids) this.#events.message(id);
			} else if (step === SYNC_STEP_2) this.#synced = true;
			else if (step === SYNC_STEP_1) {
				// The server asks what this client holds: its own writes (none that the server lacks, normally).
				this.#statuses.push([...this.#unconfirmed]);
				this.#send(Msg.Sync, (e) => {
					encoding.writeVarUint(e, SYNC_STEP_2);
					encoding.writeVarUint8Array(e, Y.encodeStateAsUpdate(this.#doc));
				});
			}
		} else if (type === Msg.Auth) {
			if (decoding.readVarUint(decoder) === AUTH_AUTHENTICATED) {
				this.#authenticated = true;
				// Ask for the room (what a client opening it without a local copy asks), and say who is here.
				this.#send(Msg.Sync, (e) => {
					encoding.writeVarUint(e, SYNC_STEP_1);
					encoding.writeVarUint8Array(e, Y.encodeStateVector(new Y.Doc()));
				});
				this.presence(false);
			} else {
				this.#closing = true;
				this.#events.failed(`refused: ${decoding.readVarString(decoder)}`);
				this.#ws.close();
			}
		} else if (type === Msg.Stateless) {
			const payload = JSON.parse(decoding.readVarString(decoder)) as {
				type?: string;
				clientMsgIds?: string[];
			};
			if (payload.type === 'ack' && payload.clientMsgIds) {
				this.#acksById = true;
				this.#confirm(payload.clientMsgIds);
			}
		} else if (type === SYNC_STATUS) {
			// Hocuspocus confirms each sync step 2 and update it applied, in order: bare's only ack. Ours acks by id
			// before it applies (and so before this status), once the update is durable.
			if (decoding.readVarUint(decoder) !== 1) return;
			const confirms = this.#statuses.shift() ?? [];
			if (!this.#acksById) this.#confirm(confirms);
		}
	}

	/** The user channel: an empty read-only document; the server speaks on it in stateless messages. */
	#receiveOnChannel(type: number, decoder: decoding.Decoder): void {
		const name = this.#channel as string;
		if (type === Msg.Auth) {
			if (decoding.readVarUint(decoder) === AUTH_AUTHENTICATED) {
				// What the web client's provider sends on any document it opens.
				this.#send(
					Msg.Sync,
					(e) => {
						encoding.writeVarUint(e, SYNC_STEP_1);
						encoding.writeVarUint8Array(e, Y.encodeStateVector(new Y.Doc()));
					},
					name,
				);
				this.renewChannel();
			} else this.#events.failed(`user channel refused: ${decoding.readVarString(decoder)}`);
		} else if (type === Msg.Stateless) {
			const payload = JSON.parse(decoding.readVarString(decoder)) as { type?: string };
			this.#events.channel?.(String(payload.type));
		}
	}

	/** Set by the first ack by id (ours): sync statuses confirm nothing then. */
	#acksById = false;
	#confirm(ids: string[]): void {
		const confirmed = ids.filter((id) => this.#unconfirmed.delete(id));
		if (confirmed.length > 0) this.#events.acked(confirmed);
	}
}

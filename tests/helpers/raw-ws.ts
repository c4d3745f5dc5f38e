import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { messageYjsSyncStep1 } from 'y-protocols/sync';

/** Hocuspocus message types (as on the wire). */
export const Msg = {
	Sync: 0,
	Awareness: 1,
	Auth: 2,
	Stateless: 5,
	BroadcastStateless: 6,
	Close: 7,
	SyncStatus: 8,
} as const;
const SYNC_UPDATE = 2;

/** One Hocuspocus frame: the document's name, the message type, then the body. */
export function frame(
	documentName: string,
	type: number,
	body: (encoder: encoding.Encoder) => void,
): Uint8Array {
	const encoder = encoding.createEncoder();
	encoding.writeVarString(encoder, documentName);
	encoding.writeVarUint(encoder, type);
	body(encoder);
	return encoding.toUint8Array(encoder);
}

/** A room login (Hocuspocus's Auth message) for `documentName`. */
export function authFrame(documentName: string, token: string): Uint8Array {
	return frame(documentName, Msg.Auth, (e) => {
		encoding.writeVarUint(e, 0);
		encoding.writeVarString(e, token);
		encoding.writeVarString(e, '4.8.0');
	});
}

/** An update message (sync step "update") for `documentName`. */
export function updateFrame(documentName: string, update: Uint8Array): Uint8Array {
	return frame(documentName, Msg.Sync, (e) => {
		encoding.writeVarUint(e, SYNC_UPDATE);
		encoding.writeVarUint8Array(e, update);
	});
}

export type Outcome =
	| { kind: 'denied'; reason: string }
	| { kind: 'doc-closed'; reason: string }
	| { kind: 'socket-closed'; code: number; reason: string }
	| { kind: 'open' };

/**
 * A hand-driven Hocuspocus connection for attacks a provider cannot express: it speaks the wire
 * format directly and reports how the server answered.
 */
export class RawClient {
	readonly ws: WebSocket;
	readonly documentName: string;
	#outcome: Outcome = { kind: 'open' };
	#authenticated!: () => void;
	readonly authenticated: Promise<void>;
	readonly ended: Promise<Outcome>;

	constructor(wsUrl: string, documentName: string) {
		this.documentName = documentName;
		this.ws = new WebSocket(wsUrl);
		this.ws.binaryType = 'arraybuffer';
		let denied!: (reason: string) => void;
		this.authenticated = new Promise<void>((resolve, reject) => {
			this.#authenticated = resolve;
			denied = (reason) => reject(new Error(`denied: ${reason}`));
		});
		this.authenticated.catch(() => {});
		let end!: (o: Outcome) => void;
		this.ended = new Promise<Outcome>((resolve) => (end = resolve));
		this.ws.addEventListener('message', (event) => {
			const decoder = decoding.createDecoder(new Uint8Array(event.data as ArrayBuffer));
			decoding.readVarString(decoder);
			const type = decoding.readVarUint(decoder);
			if (type === Msg.Auth) {
				const authType = decoding.readVarUint(decoder);
				if (authType === 2) this.#authenticated();
				else {
					const reason = decoding.readVarString(decoder);
					this.#outcome = { kind: 'denied', reason };
					denied(reason);
					end(this.#outcome);
				}
			} else if (type === Msg.Close) {
				this.#outcome = { kind: 'doc-closed', reason: decoding.readVarString(decoder) };
				end(this.#outcome);
			}
		});
		this.ws.addEventListener('close', (event) => {
			if (this.#outcome.kind === 'open')
				this.#outcome = { kind: 'socket-closed', code: event.code, reason: event.reason };
			end(this.#outcome);
		});
	}

	/** Connects and authenticates; resolves once the server accepted the token. */
	static async open(wsUrl: string, documentName: string, token: string): Promise<RawClient> {
		const client = new RawClient(wsUrl, documentName);
		await new Promise<void>((resolve, reject) => {
			client.ws.addEventListener('open', () => resolve(), { once: true });
			client.ws.addEventListener('error', () => reject(new Error('websocket error')), { once: true });
		});
		client.send(authFrame(documentName, token));
		return client;
	}

	frame(type: number, body: (encoder: encoding.Encoder) => void): Uint8Array {
		return frame(this.documentName, type, body);
	}

	send(bytes: Uint8Array) {
		this.ws.send(bytes as Uint8Array<ArrayBuffer>);
	}

	syncStep1(stateVector: Uint8Array) {
		this.send(
			this.frame(Msg.Sync, (e) => {
				encoding.writeVarUint(e, messageYjsSyncStep1);
				encoding.writeVarUint8Array(e, stateVector);
			}),
		);
	}

	/** Says one awareness client's state (docs/protocol.md section 9) with `clock`, as a provider does. */
	sayAwareness(clientId: number, clock: number, state: unknown) {
		const update = encoding.createEncoder();
		encoding.writeVarUint(update, 1);
		encoding.writeVarUint(update, clientId);
		encoding.writeVarUint(update, clock);
		encoding.writeVarString(update, JSON.stringify(state));
		this.send(
			this.frame(Msg.Awareness, (e) => encoding.writeVarUint8Array(e, encoding.toUint8Array(update))),
		);
	}

	sendUpdate(update: Uint8Array) {
		this.send(updateFrame(this.documentName, update));
	}

	/** How the server answered within `ms` (still open when it did not react). */
	async outcome(ms = 3_000): Promise<Outcome> {
		return Promise.race([this.ended, new Promise<Outcome>((r) => setTimeout(() => r(this.#outcome), ms))]);
	}

	close() {
		this.ws.close();
	}
}

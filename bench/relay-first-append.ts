import type { beforeSyncPayload } from '@hocuspocus/server';
import { collabRejections } from '../src/lib/protocol/errors.ts';
import type { CollabContext } from '../server/collab/authentication.ts';
import { DurableAppend } from '../server/collab/durable-append.ts';
import { carriesUpdate, sendAck, type LiveRooms } from '../server/collab/live-rooms.ts';

/**
 * The relay-before-commit experiment (bench/load.ts, target `ours-relay-first`): an accepted update is relayed at
 * once and only the writer's ack waits for the append to commit. Not safe to ship: a crash between the relay and
 * the commit shows others a message that is then lost (docs/benchmarks.md, "Relay before the commit").
 */
export class RelayFirstAppend extends DurableAppend {
	readonly #rooms: LiveRooms;

	constructor(deps: ConstructorParameters<typeof DurableAppend>[0]) {
		super(deps);
		this.#rooms = deps.rooms;
	}

	override async beforeSync(payload: beforeSyncPayload<CollabContext>): Promise<void> {
		if (!carriesUpdate(payload)) return;
		const judged = this.#rooms.judged.get(payload);
		const room = this.#rooms.get(payload.documentName);
		const events = judged?.judgement.events ?? [];
		if (!judged || !room || events.length === 0 || judged.judgement.inFlightKeys.length > 0)
			return super.beforeSync(payload);
		this.#rooms.judged.delete(payload);
		const { connection } = payload;
		const context = connection.context as CollabContext;
		const keys = events.map((e) => e.clientMsgId);
		judged.span.setAttribute('chat.client_msg_ids', keys);
		this.append(room, payload.payload, judged, context.user.id)
			.then(
				() => {
					this.accepted(room, context, payload.payload, events);
					sendAck(connection, [...keys, ...judged.judgement.knownKeys]);
				},
				() =>
					connection.webSocket.close(collabRejections.unavailable.code, collabRejections.unavailable.reason),
			)
			.finally(() => judged.span.end());
	}
}

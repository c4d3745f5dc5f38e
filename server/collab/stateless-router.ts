import type { Extension, onStatelessPayload } from '@hocuspocus/server';
import type { Logger } from 'pino';
import {
	clientStateless,
	dispatchStateless,
	type ClientStateless,
	type StatelessHandlers,
} from '#protocol/stateless.ts';
import type { CollabContext } from './authentication.ts';

export type ClientStatelessHandlers = StatelessHandlers<
	ClientStateless,
	onStatelessPayload,
	Promise<void> | void
>;

/** An extension that answers some types of the clients' stateless messages (stateless.ts). */
export interface HandlesStateless {
	readonly statelessHandlers: ClientStatelessHandlers;
}

export function handlesStateless<E extends object>(extension: E): extension is E & HandlesStateless {
	return 'statelessHandlers' in extension;
}

/**
 * Reads every stateless message a client sends once, and hands it to the one extension that handles its type
 * (`pending`: DurableAppend, `read`: ReadReceipts). A message of no known type is ignored and logged at debug.
 */
export class StatelessRouter implements Extension {
	readonly extensionName = 'stateless-router';
	readonly #log: Logger;
	readonly #handlers: ClientStatelessHandlers = {};

	constructor(log: Logger, extensions: HandlesStateless[]) {
		this.#log = log.child({ component: 'stateless' });
		for (const extension of extensions) {
			for (const [type, handler] of Object.entries(extension.statelessHandlers)) {
				const key = type as ClientStateless['type'];
				if (this.#handlers[key]) throw new Error(`two extensions handle the stateless message "${type}"`);
				Object.assign(this.#handlers, { [key]: handler });
			}
		}
	}

	async onStateless(payload: onStatelessPayload): Promise<void> {
		const handled = await dispatchStateless(clientStateless, payload.payload, this.#handlers, payload);
		if (handled !== 'unknown') return;
		const context = payload.connection.context as CollabContext;
		this.#log.debug(
			{ userId: context.user.id, documentName: payload.documentName, bytes: payload.payload.length },
			'unknown stateless message ignored',
		);
	}
}

import { z } from 'zod';
import { uuid } from './ids.ts';

/**
 * Stateless messages from the server to one connection, as JSON strings.
 *
 * `ack` names the events of an update the server has made durable (in the append log and the
 * Postgres mirror) — sent before the update is applied and relayed. It covers new events and the
 * ones the server already held, so a client can mark every listed message as "on the server".
 */
export const serverStateless = z.discriminatedUnion('type', [
	z.strictObject({ type: z.literal('ack'), clientMsgIds: z.array(uuid) }),
]);
export type ServerStateless = z.infer<typeof serverStateless>;

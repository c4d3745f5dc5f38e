import { contentFilterConfig } from './moderation.ts';
import { z } from './zod.ts';

/**
 * `GET /api/config`: what a client needs before it writes. No sign-in needed. A client keeps the last answer, so
 * it filters the same way offline; unknown fields are for newer clients and ignored.
 */
export const serverConfigResponse = z.object({
	/** Applied by the client before it writes (see moderation.ts); the server refuses what it would change. */
	contentFilter: contentFilterConfig,
	/**
	 * The shared limits (limits.ts), as this server has them, `documentsPerConnection` (rooms per socket) and
	 * `attachmentMaxBytes` (the largest file it takes, ATTACHMENT_MAX_BYTES) and `roomWindowMessages` (the messages a
	 * room's document keeps before older ones are trimmed into history, ROOM_WINDOW_MESSAGES).
	 */
	limits: z.record(z.string(), z.number()),
	/** The protocol version this server speaks (version.ts). */
	protocolVersion: z.number().int().min(1),
});
export type ServerConfigResponse = z.infer<typeof serverConfigResponse>;

import type { FastifyInstance } from 'fastify';
import type { ServerConfigResponse } from '#protocol/config.ts';
import { limits } from '#protocol/limits.ts';
import { PROTOCOL_VERSION } from '#protocol/version.ts';
import type { HttpDeps } from '../deps.ts';

export function configRoutes(app: FastifyInstance, deps: HttpDeps) {
	/** What a client needs to know to validate before writing: the content filter and the limits. */
	app.get('/api/config', async (): Promise<ServerConfigResponse> => ({
		contentFilter: { mode: deps.config.CONTENT_FILTER, words: deps.config.CONTENT_FILTER_WORDS },
		limits: {
			...limits,
			documentsPerConnection: deps.config.DOCUMENTS_PER_CONNECTION,
			attachmentMaxBytes: deps.config.ATTACHMENT_MAX_BYTES,
			roomWindowMessages: deps.config.ROOM_WINDOW_MESSAGES,
		},
		protocolVersion: PROTOCOL_VERSION,
	}));
}

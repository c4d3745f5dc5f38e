/** Limits shared by the browser and the server. Each is defined here once. */
export const limits = {
	/** Message content, in characters after NFC normalisation. */
	contentMin: 1,
	contentMax: 4000,
	/** A server accepts a createdAt at most this far ahead of its own clock. */
	maxClockSkewMs: 2 * 60 * 1000,
	nameMin: 3,
	nameMax: 32,
	passwordMin: 8,
	passwordMax: 128,
	roomNameMax: 80,
	/** A group's topic, in characters. */
	roomTopicMax: 250,
	roomMembersMax: 500,
	pageSizeDefault: 50,
	pageSizeMax: 500,
	/** Hits of one search (`GET /api/search`), newest first. */
	searchResults: 50,
	/** People one name search finds (`GET /api/users`). */
	userSearchResults: 20,
	/** Message ids in one `pending` question (stateless.ts). */
	pendingIdsMax: 500,
	/** Read positions one connection may send per 10 s (more are dropped). */
	readsPer10s: 30,
	/** One connection's awareness state (presence), in bytes of JSON: larger ones are dropped. */
	awarenessStateBytesMax: 2048,
	/** History messages the app asks for per page (the API's default, `pageSizeDefault`, is for other clients). */
	historyPageSize: 200,
	/** One HTTP request body (JSON), in bytes: larger ones are refused with 413. */
	httpBodyBytesMax: 64 * 1024,
	/** Files one message may carry (`attachments` of a message event). */
	attachmentsPerMessage: 10,
	/** An attachment's file name, in characters. */
	attachmentNameMax: 255,
	/** An image's placeholder (a ThumbHash, base64), in characters. */
	attachmentPlaceholderMax: 64,
	/** One Yjs update or WebSocket frame from a client, in bytes. */
	updateBytesMax: 1024 * 1024,
} as const;

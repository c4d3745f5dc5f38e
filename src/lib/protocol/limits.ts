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
	roomMembersMax: 500,
	pageSizeDefault: 50,
	pageSizeMax: 500,
	/** Hits of one search (`GET /api/search`), newest first. */
	searchResults: 50,
	/** People one name search finds (`GET /api/users`). */
	userSearchResults: 20,
	/** One HTTP request body (JSON), in bytes: larger ones are refused with 413. */
	httpBodyBytesMax: 64 * 1024,
	/** One Yjs update or WebSocket frame from a client, in bytes. */
	updateBytesMax: 1024 * 1024,
} as const;

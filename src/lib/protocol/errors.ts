/**
 * Error codes of the JSON API (`{ error: { code, message } }`) and the reasons with which the
 * collaboration server refuses a connection or an update. One place, so clients can match on them.
 */
export const apiErrorCodes = [
	'bad_request',
	'validation_failed',
	'unauthorized',
	'invalid_credentials',
	'forbidden',
	'not_found',
	'conflict',
	'name_taken',
	'rate_limited',
	'payload_too_large',
	'unsupported_media_type',
	'internal',
	'unavailable',
] as const;
export type ApiErrorCode = (typeof apiErrorCodes)[number];

export interface ApiErrorBody {
	error: { code: ApiErrorCode; message: string; issues?: { path: string; message: string }[] };
}

/** Close codes and reasons of the collaboration WebSocket (4000–4999 are application codes). */
export const collabRejections = {
	unauthorized: { code: 4401, reason: 'unauthorized' },
	/** The token expired and was not renewed on the open connection in time: reconnect with a fresh token. */
	tokenExpired: { code: 4401, reason: 'token-expired' },
	/** The token's session ended (signed out, password changed elsewhere, account deleted): sign in again. */
	sessionEnded: { code: 4401, reason: 'session-ended' },
	notAMember: { code: 4403, reason: 'not-a-member' },
	unknownDocument: { code: 4404, reason: 'unknown-document' },
	invalidUpdate: { code: 4422, reason: 'invalid-update' },
	updateTooLarge: { code: 4413, reason: 'update-too-large' },
	unavailable: { code: 4503, reason: 'storage-unavailable' },
	/** Too many writes: keep the document, wait, reconnect; the provider re-sends what was refused. */
	rateLimited: { code: 4429, reason: 'rate-limited' },
	tooManyDocuments: { code: 4429, reason: 'too-many-documents' },
	/** The member's role changed (e.g. to readonly): reconnect to get the new rights. */
	roleChanged: { code: 4409, reason: 'role-changed' },
	/** The client's protocol version is older than the server accepts (`version.ts`): reload the app. */
	outdatedClient: { code: 4426, reason: 'outdated-client' },
} as const;

import type { ApiErrorCode } from '#protocol/errors.ts';
import type { AuthFailureReason } from './metrics.ts';

const statusByCode: Record<ApiErrorCode, number> = {
	bad_request: 400,
	validation_failed: 400,
	unauthorized: 401,
	invalid_credentials: 401,
	forbidden: 403,
	not_found: 404,
	conflict: 409,
	name_taken: 409,
	payload_too_large: 413,
	unsupported_media_type: 415,
	rate_limited: 429,
	internal: 500,
	unavailable: 503,
};

/** An error meant for the client: a code, a human sentence and, for validation, the bad fields. */
export class AppError extends Error {
	readonly code: ApiErrorCode;
	readonly status: number;
	readonly issues?: { path: string; message: string }[];
	/** Set when the error is a failed authentication: why, for `chat_auth_failures_total`. */
	authFailure?: AuthFailureReason;

	constructor(code: ApiErrorCode, message: string, issues?: { path: string; message: string }[]) {
		super(message);
		this.code = code;
		this.status = statusByCode[code];
		this.issues = issues;
	}
}

/** A failed authentication: the client gets `code` and `message`; the metrics count `reason`. */
export function authFailed(
	reason: AuthFailureReason,
	code: 'unauthorized' | 'invalid_credentials' | 'rate_limited',
	message: string,
): AppError {
	const error = new AppError(code, message);
	error.authFailure = reason;
	return error;
}

export const notFound = (what: string) => new AppError('not_found', `${what} not found`);
export const forbidden = (message: string) => new AppError('forbidden', message);

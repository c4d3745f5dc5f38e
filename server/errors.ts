import type { ApiErrorCode } from '../src/lib/protocol/errors.ts';

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

	constructor(code: ApiErrorCode, message: string, issues?: { path: string; message: string }[]) {
		super(message);
		this.code = code;
		this.status = statusByCode[code];
		this.issues = issues;
	}
}

export const notFound = (what: string) => new AppError('not_found', `${what} not found`);
export const forbidden = (message: string) => new AppError('forbidden', message);

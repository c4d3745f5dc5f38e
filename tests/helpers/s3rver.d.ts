/** The part of s3rver (which ships no types) that the tests use. */
declare module 's3rver' {
	interface S3rverOptions {
		port?: number;
		address?: string;
		silent?: boolean;
		directory: string;
	}
	export default class S3rver {
		constructor(options: S3rverOptions);
		run(): Promise<{ address: string; port: number }>;
		close(): Promise<void>;
	}
}

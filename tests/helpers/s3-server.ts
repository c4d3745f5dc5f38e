import fs from 'node:fs';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import type { S3Options } from '../../server/files/blob-store.ts';
import { tmpDir } from './server.ts';

/**
 * An S3-compatible server for the tests (s3rver: the S3 REST API over a directory, on 127.0.0.1), with one empty
 * bucket. It runs in the test's process; `close()` stops it and removes its directory.
 */
export interface TestS3 {
	options: S3Options;
	close(): Promise<void>;
}

export async function startS3(): Promise<TestS3> {
	const directory = tmpDir('s3');
	const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory });
	const { port } = await server.run();
	const options: S3Options = {
		endpoint: `http://127.0.0.1:${port}`,
		region: 'us-east-1',
		bucket: 'chat-files',
		// s3rver's fixed credentials.
		accessKeyId: 'S3RVER',
		secretAccessKey: 'S3RVER',
		forcePathStyle: true,
	};
	const client = new S3Client({
		endpoint: options.endpoint,
		region: options.region,
		forcePathStyle: true,
		credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
	});
	await client.send(new CreateBucketCommand({ Bucket: options.bucket }));
	client.destroy();
	return {
		options,
		async close() {
			await server.close();
			fs.rmSync(directory, { recursive: true, force: true });
		},
	};
}

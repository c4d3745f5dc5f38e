import path from 'node:path';
import type { Config } from '../config.ts';
import { DiskBlobStore, S3BlobStore, type BlobStore } from './blob-store.ts';

/** The configured blob store: S3 when S3_BUCKET is set, else the disk under DATA_DIR/files. */
export function openBlobStore(config: Config): BlobStore {
	if (!config.S3_BUCKET) return new DiskBlobStore(path.join(config.DATA_DIR, 'files'));
	return new S3BlobStore(
		{
			endpoint: config.S3_ENDPOINT,
			region: config.S3_REGION,
			bucket: config.S3_BUCKET,
			accessKeyId: config.S3_ACCESS_KEY_ID,
			secretAccessKey: config.S3_SECRET_ACCESS_KEY,
			forcePathStyle: config.S3_FORCE_PATH_STYLE,
			prefix: config.S3_PREFIX,
		},
		path.join(config.DATA_DIR, 'spool'),
	);
}

import type { Config } from '../config.ts';
import type { Db } from '../db/index.ts';
import type { AuthService } from '../auth/service.ts';
import type { TokenService } from '../auth/tokens.ts';
import type { Metrics } from '../metrics.ts';
import type { PushService } from '../push/service.ts';
import type { RoomService } from '../rooms.ts';
import type { BlobStore } from '../files/blob-store.ts';
import type { Uploads } from '../files/uploads.ts';

/** What the HTTP routes need; built once in the composition root. */
export interface HttpDeps {
	config: Config;
	db: Db;
	auth: AuthService;
	tokens: TokenService;
	rooms: RoomService;
	metrics: Metrics;
	/** Web Push subscriptions and the VAPID public key. */
	push: PushService;
	/** Attachments: resumable uploads and the stored files. */
	files: { uploads: Uploads; blobs: BlobStore };
	/** Resolves when Redis answers, when configured. */
	redisReady?: () => Promise<void>;
}

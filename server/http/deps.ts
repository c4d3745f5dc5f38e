import type { Config } from '../config.ts';
import type { Db } from '../db/index.ts';
import type { AuthService } from '../auth/service.ts';
import type { TokenService } from '../auth/tokens.ts';
import type { Metrics } from '../metrics.ts';
import type { PushService } from '../push/service.ts';
import type { RoomService } from '../rooms.ts';

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
	/** Resolves when Redis answers, when configured. */
	redisReady?: () => Promise<void>;
}

/**
 * Target (b) of the load benchmark: a bare @hocuspocus/server on PORT, no extensions; with REDIS_URL, only
 * @hocuspocus/extension-redis (target `bare-2node`: the baseline of the two-node profile).
 */
import { Redis } from '@hocuspocus/extension-redis';
import { Server } from '@hocuspocus/server';

const port = Number(process.env.PORT);
const redisUrl = process.env.REDIS_URL ? new URL(process.env.REDIS_URL) : undefined;
const server = new Server({
	port,
	address: '127.0.0.1',
	quiet: true,
	extensions: redisUrl
		? [
				new Redis({
					host: redisUrl.hostname,
					port: Number(redisUrl.port || 6379),
					prefix: process.env.REDIS_PREFIX ?? 'bench-bare',
				}),
			]
		: [],
});
await server.listen();
console.log(JSON.stringify({ msg: 'bench target listening', url: `http://127.0.0.1:${port}` }));
process.once('SIGTERM', () => void server.destroy().then(() => process.exit(0)));

import net from 'node:net';
import type { Server } from 'node:http';
import type { FastifyInstance, FastifyListenOptions } from 'fastify';
import type { Logger } from 'pino';

/**
 * Connections the kernel may hold for the server before it accepts them. After a restart or a network blip every
 * client reconnects at once; with Node's default queue (511) the rest of a burst the busy event loop has not
 * accepted yet is dropped, and each dropped connection waits on TCP's retransmits (1, 3, 7, 15 s…). The kernel
 * caps the length at net.core.somaxconn (docs/operations.md).
 */
const LISTEN_BACKLOG = 4_096;

/**
 * Listening sockets the server accepts on, the first one included, where the kernel can share a port between
 * sockets (SO_REUSEPORT: Linux). libuv accepts one connection per listening socket per turn of the event loop
 * (since 1.45), so when a node restarts or a network blip ends and every client reconnects at once, a loop busy
 * with thousands of open sockets took about 100 new connections a second and the kernel's queue (LISTEN_BACKLOG)
 * overflowed. The kernel spreads new connections over the sockets, and each turn of the loop takes one from each.
 */
export const ACCEPTORS = process.platform === 'linux' ? 8 : 1;

/**
 * Starts `http` listening on `ACCEPTORS` sockets at the address (see there). Returns its URL, and a function that
 * closes the extra sockets (Fastify's close closes its own).
 */
export async function listenWide(
	http: FastifyInstance,
	{ host, port }: { host: string; port: number },
	log: Logger,
): Promise<{ url: string; closeAcceptors: () => Promise<void> }> {
	const reusePort = ACCEPTORS > 1;
	if (reusePort) await ensurePortFree(host, port);
	// Fastify hands the options to Node's `listen` as they are; its types do not list `reusePort` yet.
	const options: FastifyListenOptions & { reusePort: boolean } = {
		host,
		port,
		backlog: LISTEN_BACKLOG,
		reusePort,
	};
	const url = await http.listen(options);
	const closeAcceptors = await acceptAlso(http.server, {
		count: ACCEPTORS - 1,
		backlog: LISTEN_BACKLOG,
		log,
	});
	return { url, closeAcceptors };
}

/**
 * Refuses a port another process listens on, as a plain `listen` would: with SO_REUSEPORT a second server started
 * on the same port (a typo in its configuration) would otherwise bind too and silently take half the connections.
 * Port 0 asks the kernel for a free port, and needs no check.
 */
export async function ensurePortFree(host: string, port: number): Promise<void> {
	if (port === 0) return;
	const probe = net.createServer();
	await new Promise<void>((resolve, reject) => {
		probe.once('error', reject);
		probe.listen({ host, port, exclusive: true }, () => resolve());
	});
	await new Promise<void>((resolve) => probe.close(() => resolve()));
}

/**
 * Listens on `count` more sockets at the address `server` is bound to (which must have been bound with
 * `reusePort`), handing what they accept to `server` as its own connections. Returns a function that closes them.
 */
export async function acceptAlso(
	server: Server,
	{ count, backlog, log }: { count: number; backlog: number; log: Logger },
): Promise<() => Promise<void>> {
	const address = server.address();
	if (count <= 0 || address === null || typeof address === 'string') return async () => {};
	const extra: net.Server[] = [];
	const close = () =>
		Promise.all(extra.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => {});
	try {
		for (let i = 0; i < count; i++) {
			// noDelay as Node's HTTP server sets it on the sockets it accepts itself.
			const acceptor = net.createServer({ noDelay: true }, (socket) => server.emit('connection', socket));
			acceptor.on('error', (error) => log.error({ err: error }, 'an extra listening socket failed'));
			await new Promise<void>((resolve, reject) => {
				acceptor.once('error', reject);
				acceptor.listen({ host: address.address, port: address.port, backlog, reusePort: true }, () => {
					acceptor.off('error', reject);
					resolve();
				});
			});
			extra.push(acceptor);
		}
	} catch (error) {
		// Where the kernel or Node refuses to share the port, the one socket still serves.
		log.warn(
			{ err: error, acceptors: extra.length + 1 },
			'could not listen on more sockets: accepting on fewer',
		);
	}
	return close;
}

import net from 'node:net';
import { createTestDatabase } from './backends.ts';
import { startTestServer, type TestServer } from './server.ts';

interface Pair {
	client: net.Socket;
	upstream?: net.Socket;
}

/**
 * A TCP proxy a test can cut and restore, to take a server away without stopping it, or turn into a black hole
 * (packets vanish, nothing is closed), as a network partition does.
 */
export class TcpProxy {
	readonly #server: net.Server;
	readonly #target: { host: string; port: number };
	readonly #pairs = new Set<Pair>();
	#cut = false;
	#hole = false;
	port = 0;

	constructor(target: { host: string; port: number }) {
		this.#target = target;
		this.#server = net.createServer((client) => {
			if (this.#cut) return void client.destroy();
			const pair: Pair = { client };
			this.#pairs.add(pair);
			client.on('error', () => {
				// The other side is closed with it below.
			});
			client.on('close', () => {
				this.#pairs.delete(pair);
				pair.upstream?.destroy();
			});
			// In a black hole a new connection is accepted and then hears nothing: it is joined up on `heal`.
			if (this.#hole) client.pause();
			else this.#join(pair);
		});
	}

	#join(pair: Pair) {
		const upstream = net.connect(this.#target.port, this.#target.host);
		pair.upstream = upstream;
		upstream.on('error', () => {
			// The client side is closed with it below.
		});
		upstream.on('close', () => pair.client.destroy());
		pair.client.pipe(upstream).pipe(pair.client);
	}

	async listen(): Promise<this> {
		await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
		this.port = (this.#server.address() as net.AddressInfo).port;
		return this;
	}

	/** Drops every open connection and refuses new ones until `restore`. */
	cut() {
		this.#cut = true;
		for (const { client, upstream } of this.#pairs) {
			client.destroy();
			upstream?.destroy();
		}
	}

	restore() {
		this.#cut = false;
	}

	/** Carries no byte either way and closes nothing, until `heal`: what was sent meanwhile arrives then. */
	blackhole() {
		this.#hole = true;
		for (const { client, upstream } of this.#pairs) {
			client.unpipe();
			upstream?.unpipe();
			client.pause();
			upstream?.pause();
		}
	}

	heal() {
		this.#hole = false;
		for (const pair of this.#pairs) {
			if (!pair.upstream) {
				this.#join(pair);
				pair.client.resume();
				continue;
			}
			pair.client.pipe(pair.upstream).pipe(pair.client);
		}
	}

	async close() {
		this.cut();
		await new Promise<void>((resolve) => this.#server.close(() => resolve()));
	}
}

/**
 * A fresh Postgres database whose connections go through a TcpProxy (to cut or black-hole), and a server on it.
 * `close` stops the server and the proxy and drops the database.
 */
export async function serverBehindProxy(): Promise<{
	server: TestServer;
	proxy: TcpProxy;
	close(): Promise<void>;
}> {
	const db = await createTestDatabase();
	const url = new URL(db.url);
	const proxy = await new TcpProxy({ host: url.hostname, port: Number(url.port || 5432) }).listen();
	url.port = String(proxy.port);
	const server = await startTestServer('postgres', {}, { databaseUrl: url.toString() });
	return {
		server,
		proxy,
		async close() {
			proxy.restore();
			proxy.heal();
			await server.close();
			await proxy.close();
			await db.drop();
		},
	};
}

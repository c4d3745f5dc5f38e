import net from 'node:net';

/** A TCP proxy a test can cut and restore, to take a server away without stopping it. */
export class TcpProxy {
	readonly #server: net.Server;
	readonly #sockets = new Set<net.Socket>();
	#cut = false;
	port = 0;

	constructor(target: { host: string; port: number }) {
		this.#server = net.createServer((client) => {
			if (this.#cut) return void client.destroy();
			const upstream = net.connect(target.port, target.host);
			for (const s of [client, upstream]) {
				this.#sockets.add(s);
				s.on('close', () => this.#sockets.delete(s));
				s.on('error', () => {
					// The other side is closed with it below.
				});
			}
			client.pipe(upstream).pipe(client);
			client.on('close', () => upstream.destroy());
			upstream.on('close', () => client.destroy());
		});
	}

	async listen(): Promise<this> {
		await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
		this.port = (this.#server.address() as net.AddressInfo).port;
		return this;
	}

	/** Drops every open connection and refuses new ones until `restore`. */
	cut() {
		this.#cut = true;
		for (const s of this.#sockets) s.destroy();
	}

	restore() {
		this.#cut = false;
	}

	async close() {
		this.cut();
		await new Promise<void>((resolve) => this.#server.close(() => resolve()));
	}
}

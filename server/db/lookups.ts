/**
 * Answers lookups by key, gathering those asked in one turn of the event loop into one query (at most `maxKeys`
 * keys a query; the same key asked twice is looked up once). After a node restarts every client reconnects at
 * once, and each connection asks whether its session is live and what its membership is: thousands of round trips
 * a second that waited for the pool's ten connections until they timed out. Gathered, a burst costs a few queries a
 * turn. A lone lookup waits only for the end of its turn.
 */
export class Lookups<Key, Value> {
	readonly #find: (keys: Key[]) => Promise<Map<string, Value>>;
	readonly #idOf: (key: Key) => string;
	readonly #missing: Value;
	readonly #maxKeys: number;
	#gathered = new Map<
		string,
		{ key: Key; waiting: { resolve(v: Value): void; reject(e: unknown): void }[] }
	>();
	#scheduled = false;

	/**
	 * `find` answers a list of keys with a map from `idOf(key)` to the value of each key found; a key it leaves out
	 * gets `missing`. An error fails every lookup of that query.
	 */
	constructor(options: {
		find: (keys: Key[]) => Promise<Map<string, Value>>;
		idOf: (key: Key) => string;
		missing: Value;
		maxKeys?: number;
	}) {
		this.#find = options.find;
		this.#idOf = options.idOf;
		this.#missing = options.missing;
		this.#maxKeys = options.maxKeys ?? 500;
	}

	get(key: Key): Promise<Value> {
		return new Promise<Value>((resolve, reject) => {
			const id = this.#idOf(key);
			const entry = this.#gathered.get(id);
			if (entry) entry.waiting.push({ resolve, reject });
			else this.#gathered.set(id, { key, waiting: [{ resolve, reject }] });
			if (this.#scheduled) return;
			this.#scheduled = true;
			setImmediate(() => this.#run());
		});
	}

	#run(): void {
		this.#scheduled = false;
		const entries = [...this.#gathered.entries()];
		this.#gathered = new Map();
		for (let i = 0; i < entries.length; i += this.#maxKeys) {
			const part = entries.slice(i, i + this.#maxKeys);
			// Through a promise, so that a `find` that throws at once fails its lookups too.
			Promise.resolve(part.map(([, entry]) => entry.key))
				.then((keys) => this.#find(keys))
				.then(
					(found) => {
						for (const [id, { waiting }] of part) {
							const value = found.has(id) ? (found.get(id) as Value) : this.#missing;
							for (const w of waiting) w.resolve(value);
						}
					},
					(error: unknown) => {
						for (const [, { waiting }] of part) for (const w of waiting) w.reject(error);
					},
				);
		}
	}
}

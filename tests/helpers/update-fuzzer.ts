/**
 * The hostile side of tests/integration/update-fuzz.test.ts, in its own process so that generating and sending
 * thousands of updates does not slow the event loop that measures the well-behaved members' echo.
 *
 *   node tests/helpers/update-fuzzer.ts '<json: FuzzerOptions>'
 *
 * Generates `count` mutated and random updates from `seed` (before it starts sending), then sends them from
 * `sockets` sockets at once as the member `token`: log in, send one update, read the answer, log in again after a
 * refusal. Prints one JSON line per phase: `{"ready":true}` once generated, then `{"done":…}` with the counts;
 * reads `go`, `pause` and `resume` on stdin.
 */
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import * as decoding from 'lib0/decoding';
import * as Y from 'yjs';
import { authFrame, Msg, updateFrame } from './raw-ws.ts';

export interface FuzzerOptions {
	wsUrl: string;
	documentName: string;
	/** The attacking member's access token and user id. */
	token: string;
	userId: string;
	/** Another member, whose id the fuzz forges. */
	victimId: string;
	/** The room's document as the attacker may hold it (base64 of a Yjs update), to craft overwrites. */
	state: string;
	seed: number;
	count: number;
	sockets: number;
}

export interface FuzzerResult {
	sent: number;
	accepted: number;
	refused: number;
	socketCloses: number;
	unanswered: number;
	reasons: Record<string, number>;
	seconds: number;
}

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with its seed. */
function prng(seed: number) {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/** `count` hostile updates: 30 % random bytes, 40 % mutations, 25 % well-formed but forbidden, 5 % valid. */
export function hostileUpdates(options: FuzzerOptions): Uint8Array[] {
	const random = prng(options.seed);
	const int = (n: number) => Math.floor(random() * n);
	const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
	const entry = (overrides: Record<string, unknown> = {}, key?: string) => {
		const d = new Y.Doc();
		const clientMsgId = randomUUID();
		d.getMap('messages').set(key ?? clientMsgId, {
			kind: 'message',
			clientMsgId,
			senderId: options.userId,
			content: 'x'.repeat(1 + int(200)),
			createdAt: new Date().toISOString(),
			...overrides,
		});
		return Y.encodeStateAsUpdate(d);
	};
	const held = Buffer.from(options.state, 'base64');
	const overwrite = () => {
		const replica = new Y.Doc();
		Y.applyUpdate(replica, held);
		const sv = Y.encodeStateVector(replica);
		const keys = [...replica.getMap('messages').keys()];
		if (keys.length === 0) return entry({ senderId: options.victimId });
		const key = keys[int(keys.length)] as string;
		if (random() < 0.5) replica.getMap('messages').delete(key);
		else replica.getMap('messages').set(key, { kind: 'message', content: 'overwritten' });
		return Y.encodeStateAsUpdate(replica, sv);
	};
	const forbidden = [
		() => entry({ senderId: options.victimId }),
		() => entry({ content: '' }),
		() => entry({ content: 'x'.repeat(4001) }),
		() => entry({ content: 'a\u0000b' }),
		() => entry({ createdAt: '0000-01-01T00:00:00Z' }),
		() => entry({ createdAt: '1970-01-01T00:00:00Z' }),
		() => entry({ createdAt: new Date(Date.now() + 86_400_000).toISOString() }),
		() => entry({ kind: 'shout' }),
		() => entry({ extra: true }),
		() => entry({}, randomUUID()),
		overwrite,
		() => {
			const d = new Y.Doc();
			d.getText('other').insert(0, 'x');
			return Y.encodeStateAsUpdate(d);
		},
		() => {
			const d = new Y.Doc();
			d.getMap('messages').set(randomUUID(), new Y.Map());
			return Y.encodeStateAsUpdate(d);
		},
	];
	const pick = () => (forbidden[int(forbidden.length)] as () => Uint8Array)();
	const mutate = (update: Uint8Array) => {
		let out = Uint8Array.from(update);
		for (let m = 1 + int(4); m > 0; m--) {
			const at = int(Math.max(1, out.length));
			switch (int(5)) {
				case 0: // flip a bit
					out[at] = (out[at] ?? 0) ^ (1 << int(8));
					break;
				case 1: // a varint that claims far more than follows
					out[at] = 0xff;
					break;
				case 2: // truncate
					out = out.slice(0, at);
					break;
				case 3: // insert random bytes
					out = Uint8Array.from([...out.slice(0, at), ...bytes(1 + int(16)), ...out.slice(at)]);
					break;
				default: // repeat a slice
					out = Uint8Array.from([...out.slice(0, at), ...out.slice(int(at + 1))]);
			}
		}
		return out;
	};
	return Array.from({ length: options.count }, () => {
		const r = random();
		if (r < 0.3) return bytes(int(300));
		if (r < 0.7) return mutate(random() < 0.5 ? entry() : pick());
		if (r < 0.95) return pick();
		return entry(); // valid now and then: the fuzz also writes what must be kept
	});
}

/** Holds the attack between `pause` and `resume` (each socket waits before its next update). */
class Gate {
	#closed: Promise<void> | undefined;
	#open: (() => void) | undefined;
	pause() {
		this.#closed ??= new Promise((resolve) => (this.#open = resolve));
	}
	resume() {
		this.#open?.();
		this.#closed = undefined;
	}
	get passed(): Promise<void> {
		return this.#closed ?? Promise.resolve();
	}
}

/** Sends `updates` from `sockets` sockets at once; each refusal means logging in to the room again. */
export async function attack(
	options: FuzzerOptions,
	updates: Uint8Array[],
	gate = new Gate(),
): Promise<FuzzerResult> {
	const result: FuzzerResult = {
		sent: 0,
		accepted: 0,
		refused: 0,
		socketCloses: 0,
		unanswered: 0,
		reasons: {},
		seconds: 0,
	};
	const started = performance.now();
	let next = 0;
	const socket = async () => {
		while (next < updates.length) {
			const ws = new WebSocket(options.wsUrl);
			ws.binaryType = 'arraybuffer';
			let answer: ((kind: string) => void) | undefined;
			ws.addEventListener('message', (event) => {
				const decoder = decoding.createDecoder(new Uint8Array(event.data as ArrayBuffer));
				decoding.readVarString(decoder);
				const type = decoding.readVarUint(decoder);
				if (type === Msg.Auth) {
					const kind = decoding.readVarUint(decoder);
					answer?.(kind === 2 ? 'authenticated' : `denied ${decoding.readVarString(decoder)}`);
				} else if (type === Msg.SyncStatus) answer?.('accepted');
				else if (type === Msg.Close) answer?.(`closed ${decoding.readVarString(decoder).split(':')[0]}`);
			});
			ws.addEventListener('close', () => answer?.('socket-closed'));
			await new Promise((resolve, reject) => {
				ws.onopen = resolve;
				ws.onerror = reject;
			});
			const ask = (frame: Uint8Array) =>
				new Promise<string>((resolve) => {
					const timer = setTimeout(() => resolve('unanswered'), 10_000);
					answer = (kind) => {
						clearTimeout(timer);
						answer = undefined;
						resolve(kind);
					};
					ws.send(frame as Uint8Array<ArrayBuffer>);
				});
			let open = false;
			while (next < updates.length && ws.readyState === WebSocket.OPEN) {
				if (!open) {
					const login = await ask(authFrame(options.documentName, options.token));
					if (login !== 'authenticated') throw new Error(`the attacker could not log in: ${login}`);
					open = true;
				}
				await gate.passed;
				// Another socket may have taken the last one while this one logged in or waited.
				if (next >= updates.length) break;
				const update = updates[next++] as Uint8Array;
				result.sent++;
				const outcome = await ask(updateFrame(options.documentName, update));
				if (outcome === 'accepted') result.accepted++;
				else if (outcome === 'unanswered') result.unanswered++;
				else if (outcome === 'socket-closed') result.socketCloses++;
				else {
					result.refused++;
					result.reasons[outcome] = (result.reasons[outcome] ?? 0) + 1;
					open = false;
				}
			}
			ws.close();
		}
	};
	await Promise.all(Array.from({ length: options.sockets }, socket));
	result.seconds = (performance.now() - started) / 1000;
	return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
	const options = JSON.parse(process.argv[2] as string) as FuzzerOptions;
	const updates = hostileUpdates(options);
	process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
	// The parent steers on stdin, one word a line: `go` starts, `pause` and `resume` hold the attack (it measures
	// its baseline in the pauses).
	const gate = new Gate();
	let started = false;
	createInterface({ input: process.stdin }).on('line', (line) => {
		if (line === 'pause') gate.pause();
		else if (line === 'resume') gate.resume();
		else if (line === 'go' && !started) {
			started = true;
			attack(options, updates, gate).then(
				(done) => {
					process.stdout.write(`${JSON.stringify({ done })}\n`);
					process.exit(0);
				},
				(error: unknown) => {
					process.stderr.write(`${String((error as Error).stack ?? error)}\n`);
					process.exit(1);
				},
			);
		}
	});
}

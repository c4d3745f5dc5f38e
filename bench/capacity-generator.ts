/**
 * One process of `npm run bench:capacity`'s load generator (bench/capacity.ts drives it over IPC). It holds its
 * share of the users, each with the mix a team chat sees (see bench/capacity.ts): a message a minute, typed for a
 * moment first; presence renewed every 15 s; a read position reported when others' messages arrive (at most every
 * 10 s, on our server, the one that tracks reads); and now and then the room opened again (a reconnect: login,
 * and the room's content fetched again). Users of the Yjs targets are thin clients (bench/thin-client.ts); the
 * seed's are Socket.IO clients, as its own client would be.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { io, type Socket } from 'socket.io-client';
import type { BenchMessage, ClientSpec } from './client.ts';
import { sentAtUs, stampedId } from './client.ts';
import { PROTOCOL_PARAMETER } from '../src/lib/protocol/version.ts';
import { ThinClient } from './thin-client.ts';
import * as Y from 'yjs';

export interface Mix {
	/** Every user writes one message this often (ms), starting at a random moment. */
	messageMs: number;
	/** Typing shows this long (ms) before the message goes. */
	typingMs: number;
	/** Presence renewal (Yjs targets); 0: none (typing still sets it, and the server drops it after 30 s). */
	presenceMs: number;
	/** At most one read report per user this often (ours). */
	readMs: number;
	/** Each user opens its room again (reconnects) after an exponentially distributed time of this mean (ms). */
	reopenMeanMs: number;
	/** A message not acknowledged this long after it was written counts as an error (ms). */
	ackTimeoutMs: number;
	/** Each user also opens their user channel on the same socket, as the web client does (ours). */
	userChannels: boolean;
	/** The channel renews its own presence every `presenceMs`, as the web client's does with no live room on screen. */
	channelPresence: boolean;
	/** The protocol version users say they follow (`?protocol=`, ours), as the web client of this build does. */
	clientProtocol: number;
}

export type ToCapacityGenerator =
	| { type: 'start'; epoch: string; mix: Mix }
	| { type: 'add'; users: ClientSpec[]; spreadMs: number }
	| { type: 'begin' }
	| { type: 'end' }
	| { type: 'close' };

export type FromCapacityGenerator =
	| {
			type: 'added';
			connected: number;
			failed: number;
			/** From the first user's connect to the last one's sync (or the minute's end), ms. */
			syncedAfterMs: number;
			stuck: Record<string, number>;
			/** Why connections failed while the step's users were added (reconnects of earlier users too). */
			failures: Record<string, number>;
	  }
	| {
			type: 'window';
			latencies: Float64Array;
			errors: string[];
			sent: number;
			reopened: number;
			/** Messages the user channels received in the window, by type. */
			channel: Record<string, number>;
			cpuMs: number;
			loopDelayMaxMs: number;
	  };

/** One user's connection: a thin client or a Socket.IO client. */
interface Connection {
	synced(): boolean;
	/** Where it is stuck when it has not synced (thin clients; the seed's say `connecting`). */
	stage(): string;
	write(message: BenchMessage): void;
	typing(on: boolean): void;
	renew(): void;
	read(clientMsgId: string): void;
	close(): void;
}

let epoch = 0n;
const nowUs = () => Number(process.hrtime.bigint() - epoch) / 1_000;
let mix: Mix;
let recording: {
	latencies: number[];
	errors: string[];
	sent: number;
	reopened: number;
	channel: Record<string, number>;
	cpu: NodeJS.CpuUsage;
} | null = null;
const loop = monitorEventLoopDelay({ resolution: 10 });
const users: User[] = [];

/** Why connections failed since the last step was added, by reason (the window's errors list each one). */
let failures: Record<string, number> = {};

function error(reason: string): void {
	recording?.errors.push(reason);
	const why = reason.slice(reason.indexOf(': ') + 2);
	failures[why] = (failures[why] ?? 0) + 1;
}

/**
 * Refusals a device retries (docs/protocol.md section 5: the database was busy, too many logins): the users do
 * too, after 1 s, 2 s, then every 4 s, with jitter, as the seed's Socket.IO clients reconnect by themselves.
 */
const RETRYABLE = /storage-unavailable|rate-limited|^closed 4(503|429)\b/;

class User {
	readonly spec: ClientSpec;
	/** What this user wrote, kept across reconnects as a device keeps it (Yjs targets). */
	readonly doc = new Y.Doc();
	/**
	 * This user's messages not acknowledged yet, with when they were written (ms): re-sent when the room is opened
	 * again, and counted once as an error (`late`) when still not acknowledged after `mix.ackTimeoutMs`.
	 */
	readonly unacked = new Map<string, { message: BenchMessage; at: number; late?: true }>();
	connection: Connection;
	lastRead = 0;
	readonly timers: NodeJS.Timeout[] = [];
	#retries = 0;
	#retry: NodeJS.Timeout | undefined;

	constructor(spec: ClientSpec) {
		this.spec = spec;
		this.connection = this.#connect();
		const every = (ms: number, phase: number, fn: () => void) => {
			const first = setTimeout(() => {
				fn();
				this.timers.push(setInterval(fn, ms));
			}, phase);
			this.timers.push(first);
		};
		every(mix.messageMs, Math.random() * mix.messageMs, () => this.#type());
		if (spec.target !== 'seed' && mix.presenceMs > 0)
			every(mix.presenceMs, Math.random() * mix.presenceMs, () => this.connection.renew());
		this.#scheduleReopen();
	}

	#connect(): Connection {
		const onMessage = (id: string) => {
			const at = sentAtUs(id);
			if (at === null) return;
			recording?.latencies.push((nowUs() - at) / 1_000);
			if (this.spec.target.startsWith('ours') && Date.now() - this.lastRead >= mix.readMs) {
				this.lastRead = Date.now();
				this.connection.read(id);
			}
		};
		const acked = (ids: string[]) => ids.forEach((id) => this.unacked.delete(id));
		return this.spec.target === 'seed'
			? seedConnection(this, onMessage, acked)
			: thinConnection(this, onMessage, acked);
	}

	/** A connection failed: counted as an error, and opened again later when a device would retry. */
	failed(reason: string): void {
		error(`${this.spec.target} user ${this.spec.index}: ${reason}`);
		if (!RETRYABLE.test(reason.replace(/^user channel refused: |^refused: /, '')) || this.#retry) return;
		const delay = ([1_000, 2_000][this.#retries] ?? 4_000) * (0.5 + Math.random());
		this.#retries++;
		this.#retry = setTimeout(() => {
			this.#retry = undefined;
			this.connection.close();
			this.connection = this.#connect();
		}, delay);
		this.timers.push(this.#retry);
	}

	#type(): void {
		if (!this.connection.synced()) return;
		this.#retries = 0;
		this.connection.typing(true);
		this.timers.push(
			setTimeout(() => {
				const clientMsgId = stampedId(nowUs());
				const message: BenchMessage = {
					kind: 'message',
					clientMsgId,
					senderId: this.spec.userId,
					content: 'a message of about the length people write in a team chat',
					createdAt: new Date().toISOString(),
				};
				this.unacked.set(clientMsgId, { message, at: Date.now() });
				if (recording) recording.sent++;
				this.connection.write(message);
				this.connection.typing(false);
			}, mix.typingMs),
		);
	}

	#scheduleReopen(): void {
		const wait = -Math.log(1 - Math.random()) * mix.reopenMeanMs;
		this.timers.push(
			setTimeout(() => {
				this.connection.close();
				this.connection = this.#connect();
				if (recording) recording.reopened++;
				this.#scheduleReopen();
			}, wait),
		);
	}

	close(): void {
		for (const t of this.timers) clearTimeout(t);
		this.connection.close();
	}
}

function thinConnection(
	user: User,
	onMessage: (id: string) => void,
	acked: (ids: string[]) => void,
): Connection {
	const { spec } = user;
	const client = new ThinClient(
		spec.target.startsWith('ours') ? `${spec.url}?${PROTOCOL_PARAMETER}=${mix.clientProtocol}` : spec.url,
		`room:${spec.room}`,
		spec.token,
		{
			message: onMessage,
			acked,
			failed: (reason) => user.failed(reason),
			channel: (type) => {
				if (recording) recording.channel[type] = (recording.channel[type] ?? 0) + 1;
			},
		},
		{
			doc: user.doc,
			unconfirmed: new Set(user.unacked.keys()),
			...(mix.userChannels && spec.target.startsWith('ours')
				? { userChannel: spec.userId, channelPresence: mix.channelPresence }
				: {}),
		},
	);
	return {
		synced: () => client.synced,
		stage: () => client.stage,
		write: (message) => client.write(message),
		typing: (on) => client.presence(on),
		renew: () => {
			client.presence(false);
			client.renewChannel();
		},
		read: (id) => client.read(id),
		close: () => client.close(),
	};
}

function seedConnection(
	user: User,
	onMessage: (id: string) => void,
	acked: (ids: string[]) => void,
): Connection {
	const { spec } = user;
	const socket: Socket = io(spec.url, {
		transports: ['websocket'],
		auth: { token: spec.token, room: spec.room },
		reconnection: false,
	});
	let closing = false;
	let synced = false;
	const write = (message: BenchMessage) =>
		socket.emit('message', message, () => acked([message.clientMsgId]));
	socket.on('connect', () => {
		// What its client does on (re)connecting: send what was not acknowledged, then fetch the room.
		for (const { message } of user.unacked.values()) write(message);
		socket.emit('history', () => (synced = true));
	});
	socket.on('connect_error', (e) => error(`seed user ${spec.index}: ${e.message}`));
	socket.on('disconnect', (reason) => {
		if (!closing) error(`seed user ${spec.index}: disconnected (${reason})`);
	});
	socket.on('message', (m: BenchMessage) => onMessage(m.clientMsgId));
	return {
		synced: () => synced,
		stage: () => (synced ? 'synced' : socket.connected ? 'syncing' : 'connecting'),
		write,
		typing: (on) => socket.emit('typing', on),
		renew: () => {},
		read: () => {},
		close: () => {
			closing = true;
			socket.disconnect();
		},
	};
}

function send(message: FromCapacityGenerator) {
	process.send?.(message);
}

/** Connects `specs` evenly over `spreadMs`; answers once each one synced (or a minute passed). */
async function add(specs: ClientSpec[], spreadMs: number): Promise<void> {
	process.setMaxListeners(process.getMaxListeners() + specs.length);
	const added: User[] = [];
	const started = Date.now();
	for (const [i, spec] of specs.entries()) {
		const wait = started + ((i + 1) * spreadMs) / specs.length - Date.now();
		if (wait >= 2) await new Promise((r) => setTimeout(r, wait));
		added.push(new User(spec));
	}
	users.push(...added);
	const deadline = Date.now() + 60_000;
	while (added.some((u) => !u.connection.synced()) && Date.now() < deadline)
		await new Promise((r) => setTimeout(r, 100));
	const connected = added.filter((u) => u.connection.synced()).length;
	const stuck: Record<string, number> = {};
	for (const u of added) {
		const stage = u.connection.stage();
		if (stage !== 'synced') stuck[stage] = (stuck[stage] ?? 0) + 1;
	}
	const syncedAfterMs = Date.now() - started;
	send({ type: 'added', connected, failed: added.length - connected, syncedAfterMs, stuck, failures });
	failures = {};
}

process.on('message', (message: ToCapacityGenerator) => {
	switch (message.type) {
		case 'start':
			epoch = BigInt(message.epoch);
			mix = message.mix;
			break;
		case 'add':
			void add(message.users, message.spreadMs);
			break;
		case 'begin':
			loop.reset();
			loop.enable();
			recording = { latencies: [], errors: [], sent: 0, reopened: 0, channel: {}, cpu: process.cpuUsage() };
			break;
		case 'end': {
			if (!recording) throw new Error('end without begin');
			const { latencies, errors, sent, reopened, channel, cpu } = recording;
			recording = null;
			loop.disable();
			let late = 0;
			for (const user of users)
				for (const entry of user.unacked.values())
					if (!entry.late && Date.now() - entry.at > mix.ackTimeoutMs) {
						entry.late = true;
						late++;
					}
			if (late > 0) errors.push(`${late} messages not acknowledged within ${mix.ackTimeoutMs} ms`);
			const used = process.cpuUsage(cpu);
			send({
				type: 'window',
				latencies: Float64Array.from(latencies),
				errors,
				sent,
				reopened,
				channel,
				cpuMs: (used.user + used.system) / 1_000,
				loopDelayMaxMs: loop.max / 1e6,
			});
			break;
		}
		case 'close':
			for (const u of users) u.close();
			setTimeout(() => process.exit(0), 200);
			break;
	}
});
process.on('disconnect', () => process.exit(0));

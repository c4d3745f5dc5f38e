/**
 * One process of the load generator (bench/harness.ts, `Fleet`): it connects its share of the simulated clients,
 * makes them write, and observes what the others wrote. The parent drives it over IPC.
 *
 * Several of these share the load so that no single event loop, with a thousand documents on its heap, stalls
 * long enough to show up as latency. A message carries its send time in its id (see `stampedId`), read on the
 * monotonic clock every process of the machine shares, so a delivery is timed wherever it is observed.
 */
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { connectClient, sentAtUs, stampedId, type Client, type ClientSpec } from './client.ts';

export type ToGenerator =
	| {
			type: 'connect';
			/** process.hrtime.bigint() of the parent at the start, as a string: every time here is µs after it. */
			epoch: string;
			clients: ClientSpec[];
			/** Members per room index, over the whole fleet. */
			members: number[];
			/** Client `index` connects at `connectAt + (index + 1) × spreadUs / total` µs after the epoch. */
			connectAtUs: number;
			spreadUs: number;
			total: number;
	  }
	| { type: 'start'; intervalMs: number }
	| { type: 'stop' }
	| { type: 'begin' }
	| { type: 'end' }
	| { type: 'counts' }
	| { type: 'close' };

export type FromGenerator =
	| { type: 'synced' }
	| { type: 'failed'; error: string }
	| {
			type: 'window';
			latencies: Float64Array;
			cpuMs: number;
			loopDelayMaxMs: number;
			gcMaxMs: number;
	  }
	| {
			type: 'counts';
			sent: number;
			/** Deliveries the messages sent here are due: one per other member of the room. */
			due: number;
			observed: number;
			/** µs after the epoch of the last delivery observed (0: none yet). */
			lastDeliveryUs: number;
	  };

/** Renewal period of a provider's presence (y-protocols' outdated timeout is 30 s; it renews at half of it). */
const AWARENESS_RENEW_MS = 15_000;

let epoch = 0n;
const nowUs = () => Number(process.hrtime.bigint() - epoch) / 1_000;

function send(message: FromGenerator) {
	process.send?.(message);
}

let clients: Client[] = [];
let members: number[] = [];
const timers = new Map<number, NodeJS.Timeout>();
let sent = 0;
let due = 0;
let observed = 0;
let lastDeliveryUs = 0;
let recording: {
	latencies: number[];
	cpu: NodeJS.CpuUsage;
	loop: ReturnType<typeof monitorEventLoopDelay>;
	/** The longest garbage-collection pause in the window, ms: the generator's stalls, told apart from others. */
	gcMaxMs: number;
} | null = null;
new PerformanceObserver((list) => {
	for (const entry of list.getEntries())
		if (recording) recording.gcMaxMs = Math.max(recording.gcMaxMs, entry.duration);
}).observe({ entryTypes: ['gc'] });

function observe(client: Client) {
	client.onMessage((key) => {
		const at = sentAtUs(key);
		if (at === null) return;
		const now = nowUs();
		observed++;
		lastDeliveryUs = now;
		recording?.latencies.push((now - at) / 1_000);
	});
}

async function connect(message: Extract<ToGenerator, { type: 'connect' }>) {
	epoch = BigInt(message.epoch);
	members = message.members;
	// Every y-websocket provider listens for the process's exit: one listener per simulated client.
	process.setMaxListeners(message.clients.length + 20);
	for (const spec of message.clients) {
		const due = message.connectAtUs + ((spec.index + 1) * message.spreadUs) / message.total;
		const wait = (due - nowUs()) / 1_000;
		if (wait >= 2) await new Promise((r) => setTimeout(r, wait));
		const client = connectClient(spec);
		observe(client);
		clients.push(client);
	}
	const deadline = Date.now() + 120_000;
	while (!clients.every((c) => c.synced())) {
		if (Date.now() > deadline)
			throw new Error(`${clients.filter((c) => !c.synced()).length} clients never synced`);
		await new Promise((r) => setTimeout(r, 50));
	}
	// Clients connected within seconds would renew their presence within the same seconds forever after: a burst
	// every 15 s that no real crowd makes. Spread the renewals over the period, as if they had come one by one.
	const now = Date.now();
	for (const c of clients) c.backdatePresence(now - Math.random() * AWARENESS_RENEW_MS);
}

function start(intervalMs: number) {
	stop();
	for (const c of clients) {
		const others = (members[c.roomIndex] ?? 1) - 1;
		const tick = () => {
			const clientMsgId = stampedId(nowUs());
			const message = {
				kind: 'message' as const,
				clientMsgId,
				senderId: c.userId,
				content: 'bench message',
				createdAt: new Date().toISOString(),
			};
			sent++;
			due += others;
			c.write(message);
			timers.set(c.index, setTimeout(tick, intervalMs));
		};
		timers.set(c.index, setTimeout(tick, Math.random() * intervalMs));
	}
}

function stop() {
	for (const t of timers.values()) clearTimeout(t);
	timers.clear();
}

process.on('message', (message: ToGenerator) => {
	switch (message.type) {
		case 'connect':
			connect(message).then(
				() => send({ type: 'synced' }),
				(error: Error) => send({ type: 'failed', error: error.message }),
			);
			break;
		case 'start':
			start(message.intervalMs);
			break;
		case 'stop':
			stop();
			break;
		case 'begin': {
			const loop = monitorEventLoopDelay({ resolution: 10 });
			loop.enable();
			recording = { latencies: [], cpu: process.cpuUsage(), loop, gcMaxMs: 0 };
			break;
		}
		case 'end': {
			if (!recording) throw new Error('end without begin');
			const { latencies, cpu, loop, gcMaxMs } = recording;
			recording = null;
			loop.disable();
			const used = process.cpuUsage(cpu);
			send({
				type: 'window',
				latencies: Float64Array.from(latencies),
				cpuMs: (used.user + used.system) / 1_000,
				loopDelayMaxMs: loop.max / 1e6,
				gcMaxMs,
			});
			break;
		}
		case 'counts':
			send({ type: 'counts', sent, due, observed, lastDeliveryUs });
			break;
		case 'close':
			stop();
			for (const c of clients) c.destroy();
			clients = [];
			// Let the sockets' close frames go out.
			setTimeout(() => process.exit(0), 100);
			break;
	}
});
process.on('disconnect', () => process.exit(0));

/**
 * `npm run bench:validation-server`: the whole server (auth, durable append to Postgres, mirror, relay) with
 * validation on and off, fed the same load in the same run. Each round starts a fresh server process on a
 * fresh Postgres database; 10 clients in 5 rooms each send MESSAGES messages one after another, each waiting
 * for the server's acknowledgement. Reports the server process's CPU per message (from /proc) and the wall
 * time, medians over ROUNDS alternating rounds, and the ratio on/off.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect, type TestClient } from '../tests/helpers/collab.ts';
import { spawnServer } from '../tests/helpers/process.ts';
import { Api } from '../tests/helpers/server.ts';
import { admin, adminUrl } from './common.ts';

const MESSAGES = Number(process.env.MESSAGES ?? 200);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const CLIENTS = 10;
const TICK_MS = 1000 / 100; // USER_HZ

function cpuMs(pid: number): number {
	const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
	return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

async function round(validation: 'on' | 'off') {
	const db = `chat_bench_${randomBytes(5).toString('hex')}`;
	await admin(`CREATE DATABASE ${db}`);
	const url = new URL(adminUrl);
	url.pathname = `/${db}`;
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-bench-'));
	const server = spawnServer(
		{
			DATABASE_URL: url.toString(),
			DATA_DIR: dataDir,
			PORT: '0',
			BENCH_VALIDATION: validation,
			WRITE_UPDATES_PER_10S: '1000000',
			AUTH_RATE_LIMIT_PER_MINUTE: '100000',
		},
		[process.execPath, 'bench/bench-server.ts'],
	);
	try {
		const base = await server.ready;
		const api = new Api(base);
		const wsUrl = base.replace(/^http/, 'ws') + '/collab';
		const users = [];
		for (let i = 0; i < CLIENTS; i++) users.push(await api.register(`bench${i}`));
		const clients = [];
		for (let i = 0; i < CLIENTS; i += 2) {
			const [a, b] = [users[i], users[i + 1]] as [(typeof users)[0], (typeof users)[0]];
			const room = await api.createGroup(a.accessToken, [b.user.id]);
			clients.push(
				connect(wsUrl, room.id, a.accessToken, a.user.id),
				connect(wsUrl, room.id, b.accessToken, b.user.id),
			);
		}
		await Promise.all(clients.map((c) => c.synced()));
		const cpuBefore = cpuMs(server.proc.pid as number);
		const started = performance.now();
		await Promise.all(
			clients.map(async (c) => {
				for (let i = 0; i < MESSAGES; i++) {
					const { clientMsgId } = c.send(
						`message ${i} from a benchmark client, about as long as a chat line`,
					);
					await acked(c, clientMsgId);
				}
			}),
		);
		const wallMs = performance.now() - started;
		const cpu = cpuMs(server.proc.pid as number) - cpuBefore;
		for (const c of clients) c.destroy();
		return { cpuUsPerMessage: (cpu * 1000) / (CLIENTS * MESSAGES), wallMs };
	} finally {
		server.proc.kill('SIGTERM');
		await server.exited;
		fs.rmSync(dataDir, { recursive: true, force: true });
		await admin(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
	}
}

/** Resolves on the server's ack of `id` (the helper's own listener records acks before this one runs). */
function acked(c: TestClient, id: string): Promise<void> {
	return new Promise((resolve) => {
		if (c.acked.has(id)) return resolve();
		const on = () => {
			if (!c.acked.has(id)) return;
			c.provider.off('stateless', on);
			resolve();
		};
		c.provider.on('stateless', on);
	});
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const results = {
	on: [] as Awaited<ReturnType<typeof round>>[],
	off: [] as Awaited<ReturnType<typeof round>>[],
};
for (let r = 0; r < ROUNDS; r++) {
	for (const v of r % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
		const result = await round(v);
		results[v].push(result);
		console.log(
			`round ${r + 1} validation ${v}: ${result.cpuUsPerMessage.toFixed(0)} µs server CPU/message, ${result.wallMs.toFixed(0)} ms`,
		);
	}
}
const cpu = (v: 'on' | 'off') => median(results[v].map((x) => x.cpuUsPerMessage));
const wall = (v: 'on' | 'off') => median(results[v].map((x) => x.wallMs));
console.log(
	`\n${CLIENTS} clients in ${CLIENTS / 2} rooms, ${MESSAGES} messages each, ${ROUNDS} rounds, Node ${process.version}\n`,
);
console.log('| server | CPU per message (µs), median | runs (µs) | wall time (ms), median |');
console.log('| --- | ---: | --- | ---: |');
for (const v of ['off', 'on'] as const) {
	console.log(
		`| validation ${v} | ${cpu(v).toFixed(0)} | ${results[v].map((x) => x.cpuUsPerMessage.toFixed(0)).join(', ')} | ${wall(v).toFixed(0)} |`,
	);
}
console.log(
	`\nratio on/off: CPU ${(cpu('on') / cpu('off')).toFixed(2)}×, wall time ${(wall('on') / wall('off')).toFixed(2)}×`,
);

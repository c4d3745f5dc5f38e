/**
 * `npm run bench:validation`: what server-side validation costs per message. The same stream of
 * single-message updates (as a provider sends them) is applied to a server document twice per round,
 * once bare (`Y.applyUpdate`, what Hocuspocus does anyway) and once judged first (`judgeUpdate`, then
 * `Y.applyUpdate`), alternating over several rounds in one process. Reports medians and the ratio.
 */
import { randomUUID } from 'node:crypto';
import * as Y from 'yjs';
import { clientOwners, judgeUpdate } from '../server/collab/validation.ts';

const MESSAGES = Number(process.env.MESSAGES ?? 20_000);
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const userId = randomUUID();

function makeUpdates(): Uint8Array[] {
	const client = new Y.Doc();
	const messages = client.getMap('messages');
	const updates: Uint8Array[] = [];
	client.on('update', (u: Uint8Array) => updates.push(u));
	for (let i = 0; i < MESSAGES; i++) {
		const clientMsgId = randomUUID();
		messages.set(clientMsgId, {
			kind: 'message',
			clientMsgId,
			senderId: userId,
			content: `message number ${i}: the quick brown fox jumps over the lazy dog`,
			createdAt: new Date(Date.UTC(2026, 10, 25, 12, 0, 0, i)).toISOString(),
		});
	}
	return updates;
}

function bare(updates: Uint8Array[]): number {
	const doc = new Y.Doc();
	const start = performance.now();
	for (const u of updates) Y.applyUpdate(doc, u);
	return performance.now() - start;
}

function judged(updates: Uint8Array[]): number {
	const doc = new Y.Doc();
	const owners = clientOwners(doc);
	const reservedKeys = new Map<string, string>();
	const start = performance.now();
	for (const u of updates) {
		const j = judgeUpdate(u, { doc, userId, now: Date.now(), reservedKeys, owners });
		for (const c of j.clients) owners.set(c, userId);
		Y.applyUpdate(doc, u);
	}
	return performance.now() - start;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const updates = makeUpdates();
bare(updates.slice(0, 2000));
judged(updates.slice(0, 2000));
const bareMs: number[] = [];
const judgedMs: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
	if (r % 2 === 0) {
		bareMs.push(bare(updates));
		judgedMs.push(judged(updates));
	} else {
		judgedMs.push(judged(updates));
		bareMs.push(bare(updates));
	}
}
const perMsg = (ms: number) => ((ms * 1000) / MESSAGES).toFixed(1);
const b = median(bareMs);
const j = median(judgedMs);
console.log(`${MESSAGES} single-message updates, ${ROUNDS} alternating rounds, Node ${process.version}\n`);
console.log('| path | median total (ms) | per message (µs) | rounds (ms) |');
console.log('| --- | ---: | ---: | --- |');
console.log(
	`| apply only (validation off) | ${b.toFixed(0)} | ${perMsg(b)} | ${bareMs.map((x) => x.toFixed(0)).join(', ')} |`,
);
console.log(
	`| judge + apply (validation on) | ${j.toFixed(0)} | ${perMsg(j)} | ${judgedMs.map((x) => x.toFixed(0)).join(', ')} |`,
);
console.log(`\nvalidation adds ${perMsg(j - b)} µs per message: ${(j / b).toFixed(2)}× the bare apply`);

import type { Queryable } from '../db/index.ts';
import * as messages from '../data/messages.ts';
import * as rooms from '../data/rooms.ts';
import * as users from '../data/users.ts';
import { notFound } from '../errors.ts';
import { exportRows } from './stream.ts';

/**
 * "Download my data" (`GET /api/me/export`): JSONL, one object per line, each with a `type`:
 * - first `account`: `{id, name, exportedAt, rooms, events}`, the counts of the lines that follow (for progress);
 * - then one `room` per room the user is in: `{id, name, topic, isGroup, role, members: [{id, name, role}]}`;
 * - then one `event` per event the user wrote, in every room, those they left too: the room export's row
 *   (`kind` message, edit, delete or reaction; a deleted message without its content).
 * Streamed a batch at a time (keyset on seq): memory stays constant whatever the account's size.
 */
export async function* exportAccount(db: Queryable, userId: string, batchSize = 200): AsyncGenerator<string> {
	const user = await users.findById(db, userId);
	if (!user) throw notFound('user');
	const list = await rooms.listFor(db, userId);
	const events = await messages.countBySender(db, userId);
	const header = {
		type: 'account',
		...user,
		exportedAt: new Date().toISOString(),
		rooms: list.length,
		events,
	};
	let chunk = `${JSON.stringify(header)}\n`;
	for (const room of list) {
		const members = room.members.map(({ id, name, role }) => ({ id, name, role }));
		const { id, name, topic, isGroup, role } = room;
		chunk += `${JSON.stringify({ type: 'room', id, name, topic, isGroup, role, members })}\n`;
	}
	yield chunk;
	let afterSeq = 0;
	for (;;) {
		const rows = await messages.batchBySender(db, { senderId: userId, afterSeq, limit: batchSize });
		if (rows.length === 0) return;
		chunk = '';
		for (const row of await exportRows(db, rows)) chunk += `${JSON.stringify({ type: 'event', ...row })}\n`;
		yield chunk;
		afterSeq = rows.at(-1)!.seq;
		if (rows.length < batchSize) return;
	}
}

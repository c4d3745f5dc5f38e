import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { clientOwners, judgeUpdate, UpdateRejected } from '../../server/collab/validation.ts';

const ana = randomUUID();
const ben = randomUUID();

function message(senderId: string, overrides: Record<string, unknown> = {}) {
	const clientMsgId = randomUUID();
	return {
		kind: 'message',
		clientMsgId,
		senderId,
		content: 'hello',
		createdAt: new Date().toISOString(),
		...overrides,
	};
}

/** A server doc and a client doc that starts as a copy of it. */
function setup() {
	const server = new Y.Doc();
	const client = new Y.Doc();
	const write = (fn: (m: Y.Map<unknown>) => void) => {
		const sv = Y.encodeStateVector(client);
		fn(client.getMap('messages'));
		return Y.encodeStateAsUpdate(client, sv);
	};
	const owners = new Map<number, string>();
	const judge = (update: Uint8Array, userId = ana) =>
		judgeUpdate(update, { doc: server, userId, now: Date.now(), reservedKeys: new Map(), owners });
	const accept = (update: Uint8Array, userId = ana) => {
		const result = judge(update, userId);
		for (const client of result.clients) owners.set(client, userId);
		Y.applyUpdate(server, update);
		return result;
	};
	return { server, client, write, judge, accept };
}

const rejection = (fn: () => unknown) => {
	try {
		fn();
	} catch (error) {
		expect(error).toBeInstanceOf(UpdateRejected);
		return (error as UpdateRejected).detail;
	}
	throw new Error('expected the update to be rejected');
};

describe('update validation', () => {
	it('accepts a new message written by the connection user and returns its event', () => {
		const { write, judge } = setup();
		const m = message(ana);
		const result = judge(write((map) => map.set(m.clientMsgId, m)));
		expect(result.events).toEqual([m]);
	});

	it('takes another user’s entries the server holds pending as known, when an honest client re-sends them', () => {
		// Ana writes twice; only her second update reaches the server (it overtook the first): Yjs keeps it pending.
		const { server, client, write, accept, judge } = setup();
		const first = message(ana);
		const second = message(ana);
		write((map) => map.set(first.clientMsgId, first));
		const overtaking = write((map) => map.set(second.clientMsgId, second));
		accept(overtaking, ana);
		expect(server.store.pendingStructs).not.toBeNull();
		// Hocuspocus gives Ben the pending entry in its sync step; Ben writes and re-sends it with his own.
		const ben_ = new Y.Doc();
		Y.applyUpdate(ben_, Y.encodeStateAsUpdate(server));
		const mine = message(ben);
		const before = Y.encodeStateVector(server);
		ben_.getMap('messages').set(mine.clientMsgId, mine);
		const resend = Y.encodeStateAsUpdate(ben_, before);
		const result = judge(resend, ben);
		expect(result.events).toEqual([mine]);
		expect(result.knownKeys).toContain(second.clientMsgId);
		// A forger still cannot write new entries under Ana's client id.
		const forged = message(ana);
		const sv = Y.encodeStateVector(client);
		client.getMap('messages').set(forged.clientMsgId, forged);
		expect(rejection(() => judge(Y.encodeStateAsUpdate(client, sv), ben))).toMatch(/another user|sender/);
	});

	it('skips entries the server already holds and reports them as known', () => {
		const { write, accept, judge, client } = setup();
		const m = message(ana);
		const first = write((map) => map.set(m.clientMsgId, m));
		accept(first);
		const again = judge(Y.encodeStateAsUpdate(client), ben);
		expect(again.events).toEqual([]);
		expect(again.knownKeys).toEqual([m.clientMsgId]);
	});

	it("rejects an event whose senderId is another user's", () => {
		const { write, judge } = setup();
		const m = message(ben);
		expect(rejection(() => judge(write((map) => map.set(m.clientMsgId, m))))).toMatch(/senderId/);
	});

	it('rejects overwriting an existing key', () => {
		const { write, accept, judge } = setup();
		const m = message(ana);
		accept(write((map) => map.set(m.clientMsgId, m)));
		expect(
			rejection(() => judge(write((map) => map.set(m.clientMsgId, { ...m, content: 'changed' })))),
		).toMatch(/written once|append-only/);
	});

	it('rejects a delete', () => {
		const { write, accept, judge } = setup();
		const m = message(ana);
		accept(write((map) => map.set(m.clientMsgId, m)));
		expect(rejection(() => judge(write((map) => map.delete(m.clientMsgId))))).toMatch(/append-only/);
	});

	it('rejects a new key that already exists on the server from another writer', () => {
		const { server, judge } = setup();
		const m = message(ana);
		server.getMap('messages').set(m.clientMsgId, m);
		const other = new Y.Doc();
		other.getMap('messages').set(m.clientMsgId, { ...m, content: 'hijack' });
		expect(rejection(() => judge(Y.encodeStateAsUpdate(other)))).toMatch(/already exists/);
	});

	it('rejects other root types, bad schemas, keys that differ from clientMsgId, and future timestamps', () => {
		const cases: [string, (d: Y.Doc) => void, RegExp][] = [
			['another root map', (d) => d.getMap('other').set(randomUUID(), message(ana)), /only new keys/],
			[
				'an unknown kind',
				(d) => {
					const m = message(ana, { kind: 'poll' });
					d.getMap('messages').set(m.clientMsgId, m);
				},
				/kind/,
			],
			[
				'an extra field',
				(d) => {
					const m = message(ana, { admin: true });
					d.getMap('messages').set(m.clientMsgId, m);
				},
				/event/,
			],
			[
				'empty content',
				(d) => {
					const m = message(ana, { content: '   ' });
					d.getMap('messages').set(m.clientMsgId, m);
				},
				/empty/,
			],
			[
				'4001 characters',
				(d) => {
					const m = message(ana, { content: 'x'.repeat(4001) });
					d.getMap('messages').set(m.clientMsgId, m);
				},
				/4000/,
			],
			[
				'a NUL byte',
				(d) => {
					const m = message(ana, { content: 'a\u0000b' });
					d.getMap('messages').set(m.clientMsgId, m);
				},
				/NUL/,
			],
			['a mismatched key', (d) => d.getMap('messages').set(randomUUID(), message(ana)), /key/],
			[
				'a future createdAt',
				(d) => {
					const m = message(ana, { createdAt: new Date(Date.now() + 5 * 60_000).toISOString() });
					d.getMap('messages').set(m.clientMsgId, m);
				},
				/future/,
			],
			['a plain string value', (d) => d.getMap('messages').set(randomUUID(), 'hello'), /event/],
		];
		for (const [what, build, reason] of cases) {
			const doc = new Y.Doc();
			build(doc);
			const server = new Y.Doc();
			expect(
				rejection(() =>
					judgeUpdate(Y.encodeStateAsUpdate(doc), {
						doc: server,
						userId: ana,
						now: Date.now(),
						reservedKeys: new Map(),
						owners: new Map(),
					}),
				),
				what,
			).toMatch(reason);
		}
	});

	it('accepts a createdAt in the past (offline writes) and up to 2 minutes ahead', () => {
		const { write, judge } = setup();
		const old = message(ana, { createdAt: '2020-01-01T00:00:00.000Z' });
		const soon = message(ana, { createdAt: new Date(Date.now() + 60_000).toISOString() });
		expect(
			judge(
				write((map) => {
					map.set(old.clientMsgId, old);
					map.set(soon.clientMsgId, soon);
				}),
			).events,
		).toHaveLength(2);
	});

	it('stores an update that arrives before its history, which Yjs shows once the history comes', () => {
		const { write, judge, server } = setup();
		const a = message(ana);
		const b = message(ana);
		const first = write((map) => map.set(a.clientMsgId, a));
		const second = write((map) => map.set(b.clientMsgId, b));
		const early = judge(second);
		expect(early.events).toEqual([b]);
		Y.applyUpdate(server, second);
		expect(server.getMap('messages').size).toBe(0);
		expect(judge(first).events).toEqual([a]);
		Y.applyUpdate(server, first);
		expect(server.getMap('messages').size).toBe(2);
	});

	it('still refuses an invalid event that arrives before its history', () => {
		const { write, judge } = setup();
		const a = message(ana);
		const forged = message(ben);
		write((map) => map.set(a.clientMsgId, a));
		expect(rejection(() => judge(write((map) => map.set(forged.clientMsgId, forged))))).toMatch(/senderId/);
	});

	it('rejects an update that overlaps history the server holds with different structs', () => {
		const { write, accept, judge, client } = setup();
		const a = message(ana);
		accept(write((map) => map.set(a.clientMsgId, a)));
		// A doc reusing the same Yjs client id writes one item of length 2 from clock 0: it overlaps
		// the item the server already holds at clock 0.
		const forger = new Y.Doc();
		forger.clientID = client.clientID;
		forger.getArray('messages').push(['x', 'y']);
		expect(rejection(() => judge(Y.encodeStateAsUpdate(forger)))).toMatch(/overlaps/);
	});

	it("refuses a user who writes with another user's Yjs client id", () => {
		const { write, accept, judge, client } = setup();
		const a = message(ana);
		accept(write((map) => map.set(a.clientMsgId, a)));
		const thief = new Y.Doc();
		Y.applyUpdate(thief, Y.encodeStateAsUpdate(client));
		thief.clientID = client.clientID;
		const b = message(ben);
		const sv = Y.encodeStateVector(thief);
		thief.getMap('messages').set(b.clientMsgId, b);
		expect(rejection(() => judge(Y.encodeStateAsUpdate(thief, sv), ben))).toMatch(
			/client id belongs to another user/,
		);
	});

	it('learns who owns each client id from a loaded document', () => {
		const doc = new Y.Doc();
		const m = message(ana);
		doc.getMap('messages').set(m.clientMsgId, m);
		expect(clientOwners(doc)).toEqual(new Map([[doc.clientID, ana]]));
	});
});

describe('edits, deletes and reactions', () => {
	/** A server doc; each user writes on a device that starts as a copy of the server's state. */
	function room(canModerate: Record<string, boolean> = {}) {
		const server = new Y.Doc();
		const owners = new Map<number, string>();
		const judge = (update: Uint8Array, userId: string) =>
			judgeUpdate(update, {
				doc: server,
				userId,
				now: Date.now(),
				reservedKeys: new Map(),
				owners,
				canModerate: canModerate[userId] ?? false,
			});
		/** Writes `events` on a fresh device of `userId` and returns the update. */
		const write = (userId: string, ...events: Record<string, unknown>[]) => {
			const device = new Y.Doc();
			Y.applyUpdate(device, Y.encodeStateAsUpdate(server));
			const sv = Y.encodeStateVector(device);
			device.transact(() => {
				for (const e of events) device.getMap('messages').set(e.clientMsgId as string, e);
			});
			return Y.encodeStateAsUpdate(device, sv);
		};
		const accept = (userId: string, ...events: Record<string, unknown>[]) => {
			const update = write(userId, ...events);
			const result = judge(update, userId);
			for (const client of result.clients) owners.set(client, userId);
			Y.applyUpdate(server, update);
			return result;
		};
		return { judge, write, accept };
	}
	const event = (kind: string, senderId: string, targetId: string, fields: Record<string, unknown> = {}) => ({
		kind,
		clientMsgId: randomUUID(),
		senderId,
		targetId,
		createdAt: new Date().toISOString(),
		...fields,
	});

	it('accepts an edit, a delete and reactions of the right users, and returns them as events to mirror', () => {
		const { accept } = room();
		const m = message(ana);
		accept(ana, m);
		const edit = event('edit', ana, m.clientMsgId, { content: 'hello, edited' });
		expect(accept(ana, edit).events).toEqual([edit]);
		const like = event('reaction', ben, m.clientMsgId, { emoji: '👍' });
		const unlike = event('unreaction', ben, m.clientMsgId, { emoji: '👍' });
		expect(accept(ben, like, unlike).events).toHaveLength(2);
		expect(accept(ana, event('delete', ana, m.clientMsgId)).events).toHaveLength(1);
	});

	it('accepts an edit of a message written in the same update (offline: written, then corrected)', () => {
		const { accept } = room();
		const m = message(ana);
		const edit = event('edit', ana, m.clientMsgId, { content: 'typo fixed' });
		expect(accept(ana, edit, m).events).toHaveLength(2);
	});

	it('refuses an edit of someone else’s message, and a delete of it unless the writer moderates the room', () => {
		const { accept, write, judge } = room({ [ben]: false });
		const m = message(ana);
		accept(ana, m);
		expect(
			rejection(() => judge(write(ben, event('edit', ben, m.clientMsgId, { content: 'x' })), ben)),
		).toMatch(/only its sender may edit/);
		expect(rejection(() => judge(write(ben, event('delete', ben, m.clientMsgId)), ben))).toMatch(
			/only its sender or a room owner or admin may delete/,
		);
		const moderated = room({ [ben]: true });
		moderated.accept(ana, m);
		expect(moderated.accept(ben, event('delete', ben, m.clientMsgId)).events).toHaveLength(1);
	});

	it('refuses events as someone else, of unknown or non-message targets, and bad emoji or content', () => {
		const { accept, write, judge } = room();
		const m = message(ana);
		accept(ana, m);
		const like = event('reaction', ana, m.clientMsgId, { emoji: '👍' });
		accept(ana, like);
		const cases: [Record<string, unknown>, RegExp][] = [
			[event('reaction', ana, m.clientMsgId, { emoji: '👍' }), /senderId must be the sender's own/],
			[
				event('reaction', ben, randomUUID(), { emoji: '👍' }),
				/reaction of a message the server does not hold/,
			],
			[event('reaction', ben, like.clientMsgId, { emoji: '👍' }), /reaction must target a message/],
			[event('reaction', ben, m.clientMsgId, { emoji: 'lol' }), /must be an emoji/],
			[event('reaction', ben, m.clientMsgId, { emoji: '👍 👍' }), /without spaces/],
			[event('edit', ben, m.clientMsgId, { content: '' }), /content/],
			[event('delete', ben, m.clientMsgId, { content: 'extra field' }), /event/],
		];
		for (const [e, reason] of cases) expect(rejection(() => judge(write(ben, e), ben))).toMatch(reason);
	});
});

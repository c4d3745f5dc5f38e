import { randomUUID } from 'node:crypto';
import type { Connection, connectedPayload, onDisconnectPayload } from '@hocuspocus/server';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '../../server/config.ts';
import type { CollabContext } from '../../server/collab/authentication.ts';
import { Devices, RECONNECT_GRACE_MS } from '../../server/collab/devices.ts';
import { UserChannels } from '../../server/collab/user-channels.ts';
import * as rooms from '../../server/data/rooms.ts';
import * as users from '../../server/data/users.ts';
import { openDb, type Db } from '../../server/db/index.ts';
import { migrate } from '../../server/db/migrate.ts';
import { LocalBus } from '../../server/events/bus.ts';
import { createLogger } from '../../server/log.ts';
import type { UserChannelMessage } from '../../src/lib/protocol/user-channel.ts';
import { PROTOCOL_VERSION, ROOM_ACTIVITY_PROTOCOL } from '../../src/lib/protocol/version.ts';
import { createTestDatabase, describeEachBackend } from '../helpers/backends.ts';
import { waitFor } from '../helpers/collab.ts';
import { tmpDir } from '../helpers/server.ts';

/**
 * What one node does for its user channels when the cluster says a room changed (server/collab/user-channels.ts),
 * with a real database and fake connections: the channels of a room are re-read together, in one statement, and
 * an event reaches only the channels it concerns.
 */
describeEachBackend('the user channels of one node', (backend) => {
	let db: Db;
	let drop = async () => {};
	/** The statements that read a room as its members see it (rooms.listFor / rooms.roomForMembers). */
	const roomReads: unknown[][] = [];
	/** When set, the answer of the next of them waits for it (a slow database); `heldAnswered` once it came. */
	let holdNext: Promise<void> | undefined;
	let heldAnswered = () => {};
	const log = createLogger('silent');
	const bus = new LocalBus(log);
	const devices = new Devices({ prefix: 'test', node: 'test', log });
	let channels: UserChannels;

	beforeAll(async () => {
		const pgdb = backend === 'postgres' ? await createTestDatabase() : undefined;
		const real = await openDb(
			parseConfig({ DATA_DIR: tmpDir('channels'), ...(pgdb ? { DATABASE_URL: pgdb.url } : {}) }),
			log,
		);
		drop = async () => {
			await real.close();
			await pgdb?.drop();
		};
		await migrate(real);
		db = new Proxy(real, {
			get(target, key) {
				const value = Reflect.get(target, key) as unknown;
				if (key === 'query')
					return (sql: string, params?: unknown[]) => {
						if (!sql.includes('JOIN memberships me')) return target.query(sql, params);
						roomReads.push(params ?? []);
						const hold = holdNext;
						holdNext = undefined;
						return target.query(sql, params).then(async (answer) => {
							if (hold) heldAnswered();
							return (await hold, answer);
						});
					};
				return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
			},
		});
		channels = new UserChannels({ db, log, bus, devices, documents: () => new Map() });
	}, 60_000);
	afterAll(async () => {
		channels?.close();
		await drop();
	});

	/** A user with their channel open here (a device that says `protocol`, or none): what it received. */
	const open = async (userId: string, protocol: number | null = null) => {
		const received: UserChannelMessage[] = [];
		const context = { user: { id: userId, name: userId }, userChannel: true, protocol } as CollabContext;
		const connection = {
			context,
			sendStateless: (payload: string) => received.push(JSON.parse(payload) as UserChannelMessage),
			close: () => {},
		} as unknown as Connection;
		await channels.connected({ connection } as connectedPayload<CollabContext>);
		expect(received[0]?.type).toBe('state');
		return {
			received,
			of: <T extends UserChannelMessage['type']>(type: T) =>
				received.filter((m): m is Extract<UserChannelMessage, { type: T }> => m.type === type),
			close: () => channels.onDisconnect({ context } as onDisconnectPayload<CollabContext>),
		};
	};
	const user = async (name: string) =>
		(await users.create(db, `${name}_${randomUUID().slice(0, 8)}`, 'not-a-password-hash')).id;
	const group = async (members: string[]) => {
		const id = randomUUID();
		await rooms.insert(db, {
			id,
			name: 'g',
			isGroup: true,
			directKey: null,
			createdBy: members[0] as string,
		});
		await rooms.addMembers(
			db,
			id,
			members.map((userId) => ({ userId, role: 'member' as const })),
		);
		return id;
	};
	/** A message stored, then told to the cluster (`stored` runs between the two). */
	const say = async (
		roomId: string,
		senderId: string,
		content: string,
		stored?: (clientMsgId: string) => Promise<void>,
	) => {
		const clientMsgId = randomUUID();
		await db.query(
			`INSERT INTO messages (room_id, client_msg_id, kind, sender_id, content, created_at)
			 VALUES ($1, $2, 'message', $3, $4, now())`,
			[roomId, clientMsgId, senderId, content],
		);
		await stored?.(clientMsgId);
		await bus.publish({
			type: 'activity',
			roomId,
			writer: { id: senderId, name: 'writer' },
			messages: [
				{
					clientMsgId,
					content,
					createdAt: new Date().toISOString(),
					receivedAt: new Date().toISOString(),
					mentions: [],
				},
			],
			others: 0,
		});
	};

	/** Ana and Ben in a room of their own, their channels open here as clients of this version. */
	const twoInARoom = async () => {
		const [ana, ben] = (await Promise.all(['ana', 'ben'].map(user))) as [string, string];
		const roomId = await group([ana, ben]);
		await open(ana, PROTOCOL_VERSION);
		const b = await open(ben, PROTOCOL_VERSION);
		return { ana, ben, roomId, b, latest: () => b.of('room-activity').at(-1) };
	};

	it('re-reads a room for all its members here in one statement after a message, each with their own counts', async () => {
		const members = await Promise.all(['ana', 'ben', 'cy', 'dee', 'eve'].map(user));
		const roomId = await group(members);
		const open5 = await Promise.all(members.map(open));
		roomReads.length = 0;

		await say(roomId, members[0] as string, 'hello all');
		await waitFor(() => open5.every((c) => c.of('room').length === 1), 5_000, 'the room on every channel');
		expect(roomReads).toHaveLength(1);
		expect(new Set((roomReads[0]?.[0] as string[]) ?? [])).toEqual(new Set(members));
		for (const [i, c] of open5.entries()) {
			const room = c.of('room')[0]?.room;
			expect(room?.id).toBe(roomId);
			// The writer has nothing unread; everyone else has the one message.
			expect(room?.unread).toBe(i === 0 ? 0 : 1);
			expect(room?.lastMessage).toMatchObject({ content: 'hello all', senderId: members[0] });
		}

		// A member whose channel closed is not read for any more.
		await open5[4]?.close();
		roomReads.length = 0;
		await say(roomId, members[1] as string, 'again');
		await waitFor(
			() => open5.slice(0, 4).every((c) => c.of('room').length === 2),
			5_000,
			'the second message',
		);
		expect(roomReads).toHaveLength(1);
		expect(new Set((roomReads[0]?.[0] as string[]) ?? [])).toEqual(new Set(members.slice(0, 4)));
		for (const c of open5.slice(0, 4)) await c.close();
	});

	it('tells devices that know it only a room’s activity after a message or a read, and the whole room after other changes', async () => {
		const [ana, ben, cy] = await Promise.all(['ana', 'ben', 'cy'].map(user));
		const roomId = await group([ana as string, ben as string, cy as string]);
		const a = await open(ana as string, PROTOCOL_VERSION);
		const b = await open(ben as string, PROTOCOL_VERSION);
		// Cy has two devices: one of this version, one of before `room-activity`.
		const cNew = await open(cy as string, PROTOCOL_VERSION);
		const cOld = await open(cy as string, ROOM_ACTIVITY_PROTOCOL - 1);

		await say(roomId, ana as string, 'hello @nobody');
		await waitFor(() => b.of('room-activity').length === 1, 5_000, 'the activity at Ben');
		await waitFor(() => cOld.of('room').length === 1, 5_000, 'the room at Cy’s old device');
		expect(b.of('room-activity')[0]).toMatchObject({
			roomId,
			unread: 1,
			mentions: 0,
			lastMessage: { content: 'hello @nobody', senderId: ana },
		});
		expect(a.of('room-activity')[0]).toMatchObject({ roomId, unread: 0 });
		expect(b.of('room')).toHaveLength(0);
		// Both of Cy's devices get the whole room: one message per user, understood by either.
		expect(cNew.of('room')).toHaveLength(1);
		expect(cNew.of('room-activity')).toHaveLength(0);
		expect(cOld.of('room')[0]?.room).toMatchObject({ id: roomId, unread: 1 });

		// Ben reads: his counts go back to zero, in the short form.
		await db.query(
			`INSERT INTO read_positions (room_id, user_id, last_read_at, last_read_id)
			 SELECT room_id, $2, created_at, client_msg_id FROM messages WHERE room_id = $1`,
			[roomId, ben],
		);
		await bus.publish({ type: 'read', roomId, userId: ben as string });
		await waitFor(() => b.of('room-activity').length === 2, 5_000, 'Ben’s read');
		expect(b.of('room-activity')[1]).toMatchObject({ roomId, unread: 0 });

		// A change of the room's details is not activity: everyone gets the whole room.
		await bus.publish({ type: 'room-details', roomId });
		await waitFor(() => b.of('room').length === 1, 5_000, 'the whole room at Ben');
		expect(
			b
				.of('room')[0]
				?.room.members.map((m) => m.id)
				.sort(),
		).toEqual([ana, ben, cy].sort());
		for (const c of [a, b, cNew, cOld]) await c.close();
	});

	it('says nothing is unread after a read up to the newest message without a query, and reads the counts otherwise', async () => {
		const { ana, ben, roomId, b, latest } = await twoInARoom();
		await say(roomId, ana as string, 'one');
		await say(roomId, ana as string, 'two');
		await waitFor(() => latest()?.unread === 2, 5_000, 'two unread at Ben');
		const { rows } = await db.query<{ id: string }>(
			'SELECT client_msg_id AS id FROM messages WHERE room_id = $1 ORDER BY created_at, client_msg_id',
			[roomId],
		);
		/** Ben's devices read up to a message: the position stored, as ReadReceipts does. */
		const store = async (id: string) => {
			await db.query(
				`INSERT INTO read_positions (room_id, user_id, last_read_at, last_read_id)
				 SELECT room_id, $2, created_at, client_msg_id FROM messages WHERE room_id = $1 AND client_msg_id = $3
				 ON CONFLICT (room_id, user_id) DO UPDATE
				   SET last_read_at = excluded.last_read_at, last_read_id = excluded.last_read_id`,
				[roomId, ben, id],
			);
		};
		/** …and then told to the cluster, with the position. */
		const tell = async (id: string) => {
			const { rows: at } = await db.query<{ at: Date }>(
				'SELECT created_at AS at FROM messages WHERE client_msg_id = $1',
				[id],
			);
			const position = { at: new Date(at[0]?.at as Date).toISOString(), clientMsgId: id };
			await bus.publish({ type: 'read', roomId, userId: ben as string, ...position });
		};
		const [first, second] = rows.map((r) => r.id) as [string, string];

		// Short of the newest: the counts are read.
		roomReads.length = 0;
		const seen = b.of('room-activity').length;
		await store(first);
		await tell(first);
		await waitFor(() => b.of('room-activity').length > seen, 5_000, 'the first read');
		expect(latest()).toMatchObject({ unread: 1 });
		expect(roomReads).toHaveLength(1);

		// Up to the newest: nothing is unread, said at once, without a statement.
		roomReads.length = 0;
		await store(second);
		await tell(second);
		expect(latest()).toMatchObject({ unread: 0, mentions: 0, lastMessage: { content: 'two' } });
		expect(roomReads).toHaveLength(0);

		// A read of a message this node has not read yet (its re-read is due, or under way): not answered from what
		// the node knew, which would show the second message as the newest, but by that re-read.
		const before = b.of('room-activity').length;
		let third = '';
		await say(roomId, ana as string, 'three', async (id) => {
			third = id;
			await store(id);
		});
		// `tell` asks the database first: the re-read is still due then (50 ms), or under way.
		await tell(third);
		await waitFor(() => latest()?.lastMessage?.content === 'three', 5_000, 'the third message');
		expect(latest()).toMatchObject({ unread: 0 });
		expect(
			b
				.of('room-activity')
				.slice(before)
				.map((m) => m.lastMessage?.content),
		).toEqual(['three']);
	});

	it('re-reads a room only once the re-read before it answered: a slow answer never overtakes a newer one', async () => {
		const { ana, roomId, b, latest } = await twoInARoom();
		await say(roomId, ana as string, 'one');
		await waitFor(() => latest()?.lastMessage?.content === 'one', 5_000, 'the first message');
		const before = b.of('room-activity').length;

		let release = () => {};
		holdNext = new Promise((resolve) => (release = resolve));
		roomReads.length = 0;
		const answered = new Promise<void>((resolve) => (heldAnswered = resolve));
		await say(roomId, ana as string, 'two');
		// Its answer is in (before the third message is stored), and held.
		await answered;
		await say(roomId, ana as string, 'three');
		// The next re-read is due after 50 ms; it waits for the slow one.
		await new Promise((resolve) => setTimeout(resolve, 300));
		expect(roomReads).toHaveLength(1);
		release();
		await waitFor(() => latest()?.lastMessage?.content === 'three', 5_000, 'the third message');
		expect(
			b
				.of('room-activity')
				.slice(before)
				.map((m) => m.lastMessage?.content),
		).toEqual(['two', 'three']);
		expect(latest()).toMatchObject({ unread: 3 });
	});

	it('tells of a member’s presence only the channels that share a room with them, and after a member left, no more', async () => {
		const [ana, ben, fay] = await Promise.all(['ana', 'ben', 'fay'].map(user));
		const withFay = await group([ana as string, fay as string]);
		await group([ana as string, ben as string]);
		const [a, b] = await Promise.all([open(ana as string), open(ben as string)]);

		await bus.publish({ type: 'presence', userId: fay as string });
		const fays = (c: { of: typeof a.of }) => c.of('presence').filter((p) => p.userId === fay);
		await waitFor(() => fays(a).length === 1, 5_000, 'Fay’s presence on Ana’s channel');
		expect(fays(a)[0]).toMatchObject({ userId: fay, online: false });
		// Ben's own presence, announced when he connected, reached him and Ana: presence does flow to him.
		await waitFor(() => b.of('presence').some((p) => p.userId === ben), 5_000, 'Ben’s own presence');
		expect(fays(b)).toHaveLength(0);

		// Ana leaves the room she shares with Fay: Fay's presence concerns her no more.
		await rooms.removeMember(db, withFay, ana as string);
		await bus.publish({
			type: 'membership',
			roomId: withFay,
			userId: ana as string,
			role: null,
			by: ana as string,
		});
		await waitFor(() => a.of('room-removed').length === 1, 5_000, 'the room removed');
		await bus.publish({ type: 'presence', userId: fay as string });
		// Ben's presence is the control: sent after Fay's, it arrives on Ana's channel after Fay's would have.
		await bus.publish({ type: 'presence', userId: ben as string });
		await waitFor(
			() => a.of('presence').some((p) => p.userId === ben),
			5_000,
			'Ben’s presence on Ana’s channel',
		);
		expect(a.of('presence').filter((p) => p.userId === fay)).toHaveLength(1);
		await a.close();
		await b.close();
	});

	it('does not show a reload as offline and online again; a device gone for good shows offline after the grace', async () => {
		const [ana, ben] = await Promise.all(['ana', 'ben'].map(user));
		await group([ana as string, ben as string]);
		const a = await open(ana as string);
		const bensAt = () => a.of('presence').filter((p) => p.userId === ben);
		let b = await open(ben as string);
		await waitFor(() => bensAt().length === 1, 5_000, 'Ben online at Ana');
		expect(bensAt()[0]).toMatchObject({ online: true });

		// A reload: the channel closes and opens again at once.
		await b.close();
		b = await open(ben as string);
		await new Promise((resolve) => setTimeout(resolve, RECONNECT_GRACE_MS + 500));
		expect(bensAt()).toHaveLength(1);

		// Gone for good: offline once the grace has passed, not before.
		const closedAt = Date.now();
		await b.close();
		await waitFor(() => bensAt().length === 2, RECONNECT_GRACE_MS + 5_000, 'Ben offline at Ana');
		expect(Date.now() - closedAt).toBeGreaterThanOrEqual(RECONNECT_GRACE_MS - 50);
		expect(bensAt()[1]).toMatchObject({ online: false });
		await a.close();
	});
});

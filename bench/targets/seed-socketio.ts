/**
 * Target `seed` of the load benchmark: the design this product grew out of (issue 21), as small as it is. A
 * Socket.IO 4 server verifies the JWT at the handshake (HS256, the same tokens ours gets), puts the socket in the
 * room named by the handshake, and for each `message` writes one row with `INSERT … ON CONFLICT DO NOTHING` (a
 * resend is a no-op), then broadcasts it to the room's other sockets and acknowledges it to the writer. For
 * `bench:capacity` it also answers `history` (the last 50 messages, what its client asks when it opens a room) and
 * relays `typing`. Nothing else: no membership check, no validation of the event, no presence. With BENCH_STAGES
 * (bench/harness.ts) it times its INSERTs, as our server times its append (bench/stage-clock.ts).
 */
import { createServer } from 'node:http';
import { jwtVerify } from 'jose';
import pg from 'pg';
import { Server } from 'socket.io';
import { WindowedSamples, writeStages } from '../stages.ts';

const secret = new TextEncoder().encode(process.env.JWT_SECRET);
const stagesDir = process.env.BENCH_STAGES;
const inserts = stagesDir ? new WindowedSamples<number>() : undefined;
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
const http = createServer();
const io = new Server(http, { transports: ['websocket'], serveClient: false });

io.use((socket, next) => {
	jwtVerify(String(socket.handshake.auth.token), secret, {
		algorithms: ['HS256'],
		issuer: 'chat',
		audience: 'chat:access',
	}).then(
		({ payload }) => {
			socket.data.userId = payload.sub;
			next();
		},
		() => next(new Error('unauthorized')),
	);
});

io.on('connection', (socket) => {
	const room = String(socket.handshake.auth.room);
	void socket.join(room);
	// What a client of this design asks when it opens a room, and its typing indicator (bench:capacity).
	socket.on('history', (ack: (rows: unknown[]) => void) => {
		pool.query('SELECT * FROM messages WHERE room_id = $1 ORDER BY created_at DESC LIMIT 50', [room]).then(
			({ rows }) => ack(rows),
			() => ack([]),
		);
	});
	socket.on('typing', (typing: boolean) =>
		socket.to(room).emit('typing', { userId: socket.data.userId, typing: typing === true }),
	);
	socket.on('message', (m: { clientMsgId: string; content: string }, ack: (ok: boolean) => void) => {
		const sent = performance.now();
		pool
			.query(
				`INSERT INTO messages (client_msg_id, room_id, sender_id, content) VALUES ($1, $2, $3, $4)
				 ON CONFLICT (client_msg_id) DO NOTHING`,
				[m.clientMsgId, room, socket.data.userId, m.content],
			)
			.then(
				() => {
					inserts?.push(performance.now() - sent);
					socket.to(room).emit('message', m);
					ack(true);
				},
				() => ack(false),
			);
	});
});

http.listen(Number(process.env.PORT), '127.0.0.1', () =>
	console.log(JSON.stringify({ msg: 'bench target listening', port: process.env.PORT })),
);
process.once('SIGTERM', () => {
	if (stagesDir && inserts) writeStages(stagesDir, { 'sql → sqlDone': inserts.samples() });
	void io.close();
	void pool.end().then(() => process.exit(0));
});

import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeEachBackend } from '../helpers/backends.ts';
import { twoMembersConnected, waitFor, type TestClient } from '../helpers/collab.ts';
import { RawClient } from '../helpers/raw-ws.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

type State = { user?: { id: string; name: string; color: string }; typing?: boolean; [k: string]: unknown };

describeEachBackend('presence', (backend) => {
	let server: TestServer;
	const clients: TestClient[] = [];
	beforeAll(async () => {
		server = await startTestServer(backend);
	});
	afterEach(() => {
		for (const c of clients.splice(0)) c.destroy();
	});
	afterAll(async () => {
		await server?.close();
	});

	async function pair() {
		const { ana, ben, room, a, b } = await twoMembersConnected(server, clients);
		const statesSeenBy = (c: TestClient) =>
			[...(c.provider.awareness?.getStates() ?? new Map()).entries()]
				.filter(([id]) => id !== c.doc.clientID)
				.map(([, s]) => s as State);
		return { ana, ben, room, a, b, statesSeenBy };
	}

	it('stamps the real identity on a state that claims to be someone else, and drops unknown fields', async () => {
		const { ana, ben, a, b, statesSeenBy } = await pair();
		b.provider.awareness?.setLocalState({
			user: { id: ana.user.id, name: 'Ana (really)', color: '#123456' },
			typing: true,
			isAdmin: true,
		});
		await waitFor(() => statesSeenBy(a).some((s) => s.typing === true), 5_000, 'ana to see ben typing');
		const seen = statesSeenBy(a).find((s) => s.typing === true);
		expect(seen).toEqual({ user: { id: ben.user.id, name: ben.user.name, color: '#123456' }, typing: true });
	});

	it("cannot write the presence of another connection's client id", async () => {
		const { ana, ben, room, a, b, statesSeenBy } = await pair();
		a.provider.awareness?.setLocalState({ user: { color: '#abcdef' }, typing: false });
		await waitFor(() => statesSeenBy(b).length === 1, 5_000, 'ben to see ana');
		// A second connection of Ben's speaks for Ana's client id, with a newer clock: one state, one frame.
		const raw = await RawClient.open(server.wsUrl, `room:${room.id}`, ben.accessToken);
		try {
			await raw.authenticated;
			raw.sayAwareness(a.doc.clientID, 1_000, { user: { color: '#000000' }, typing: true });
			// Ben's own connection says something after it, so the frame before it has been handled.
			b.provider.awareness?.setLocalState({ user: { color: '#123456' }, typing: true });
			await waitFor(() => statesSeenBy(a).some((s) => s.typing === true), 5_000, 'ana to see ben typing');
			expect(statesSeenBy(b)).toEqual([
				{ user: { id: ana.user.id, name: ana.user.name, color: '#abcdef' }, typing: false },
			]);
		} finally {
			raw.close();
		}
	});

	it('lets a reconnecting device speak for its client id while its old socket lingers', async () => {
		const { ben, room, a, statesSeenBy } = await pair();
		// Ben's device on a network that dropped: the server still holds its socket (until the 30-s timeout) when
		// the device comes back on a new one and says its state again, under the same client id.
		const clientId = 4_242_424;
		const say = (raw: RawClient, clock: number, typing: boolean) =>
			raw.sayAwareness(clientId, clock, { user: { color: '#123456' }, typing });
		const old = await RawClient.open(server.wsUrl, `room:${room.id}`, ben.accessToken);
		const again = await RawClient.open(server.wsUrl, `room:${room.id}`, ben.accessToken);
		try {
			await old.authenticated;
			say(old, 1, false);
			await waitFor(() => statesSeenBy(a).length === 1, 5_000, 'ana to see ben');
			await again.authenticated;
			say(again, 2, true);
			await waitFor(() => statesSeenBy(a)[0]?.typing === true, 5_000, 'ana to see ben typing again');
			// The old socket goes at last: Ben stays, as his device is there.
			old.close();
			await old.ended;
			await new Promise((resolve) => setTimeout(resolve, 500));
			expect(statesSeenBy(a)).toEqual([
				{ user: { id: ben.user.id, name: ben.user.name, color: '#123456' }, typing: true },
			]);
		} finally {
			old.close();
			again.close();
		}
	});

	it('removes a user at once when they leave explicitly, not after the 30 s timeout', async () => {
		const { a, b, statesSeenBy } = await pair();
		b.provider.awareness?.setLocalState({ user: { color: '#abcdef' }, typing: false });
		await waitFor(() => statesSeenBy(a).length === 1, 5_000, 'ana to see ben');
		const started = Date.now();
		b.provider.awareness?.setLocalState(null);
		await waitFor(() => statesSeenBy(a).length === 0, 5_000, 'ben to disappear');
		expect(Date.now() - started).toBeLessThan(5_000);
	});

	it('removes a user whose connection closes', async () => {
		const { a, b, statesSeenBy } = await pair();
		b.provider.awareness?.setLocalState({ user: { color: '#abcdef' }, typing: false });
		await waitFor(() => statesSeenBy(a).length === 1, 5_000, 'ana to see ben');
		b.destroy();
		await waitFor(() => statesSeenBy(a).length === 0, 5_000, 'ben to disappear after disconnect');
	});

	it('drops a state that is not an object or is oversized', async () => {
		const { a, b, statesSeenBy } = await pair();
		b.provider.awareness?.setLocalState({
			user: { color: '#abcdef' },
			typing: false,
			junk: 'x'.repeat(5_000),
		});
		await new Promise((r) => setTimeout(r, 300));
		expect(statesSeenBy(a)).toEqual([]);
		b.provider.awareness?.setLocalState({ user: { color: 'red; background: url(x)' }, typing: 'yes' });
		await waitFor(() => statesSeenBy(a).length === 1, 5_000, 'the next valid state');
		expect(statesSeenBy(a)[0]).toMatchObject({
			typing: false,
			user: { color: expect.stringMatching(/^#[0-9a-f]{6}$/) },
		});
	});
});

import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../src/lib/protocol/version.ts';
import {
	chromiumAvailable,
	ensureBuilt,
	launchBrowser,
	type BrowserSession,
	type SharedBrowser,
} from '../helpers/browser.ts';
import { canRunCluster, startCluster, type Cluster } from '../helpers/cluster.ts';
import { openChannel } from '../helpers/channel.ts';
import { connect, type TestClient } from '../helpers/collab.ts';
import {
	PASSWORD,
	UI_TIMEOUT,
	api,
	listedRooms,
	nextNewRoom,
	signIn,
	signUp,
	type BrowserUser,
} from '../helpers/live-ui.ts';

/**
 * The room list is live (the per-user channel): two server nodes behind Redis on one Postgres, each serving the
 * built client. Ana works on node A; Ben and Cleo have their room lists open on node B. What Ana does reaches
 * their lists without a reload, across nodes.
 */

/** The bar for a new room to show up in the other member's open list. */
const NEW_ROOM_WITHIN_MS = 1_000;

let cluster: Cluster;
let browser: SharedBrowser;
const sessions: BrowserSession[] = [];
const clients: TestClient[] = [];

async function user(node: number, prefix: string): Promise<BrowserUser> {
	const session = await browser.newSession();
	sessions.push(session);
	return signUp(session, cluster.urls[node] as string, prefix);
}

/** A message from `sender` into `roomId` through a real Yjs client on the sender's node, acknowledged. */
async function say(sender: BrowserUser, roomId: string, text: string): Promise<void> {
	const client = connect(
		`${sender.url.replace(/^http/, 'ws')}/collab`,
		roomId,
		sender.accessToken,
		sender.id,
	);
	clients.push(client);
	client.send(text);
	await client.synced();
}

/** Whether `who`'s app has the room open and synced (it opens the list's rooms once the list has painted). */
function roomSynced(who: BrowserUser, roomId: string): Promise<boolean> {
	return who.page.evaluate((id) => {
		const debug = (globalThis as { __chatDebug?: { roomProvider(id: string): { isSynced: boolean } | null } })
			.__chatDebug;
		return debug?.roomProvider(id)?.isSynced === true;
	}, roomId);
}

describe.skipIf(!chromiumAvailable || !canRunCluster)('the live room list', () => {
	beforeAll(async () => {
		const client = await ensureBuilt();
		cluster = await startCluster(2, () => ({ STATIC_DIR: client }));
		browser = await launchBrowser();
	}, 180_000);

	afterEach(async () => {
		for (const client of clients.splice(0)) client.destroy();
		while (sessions.length) await sessions.pop()?.close();
	});

	afterAll(async () => {
		await browser?.close();
		await cluster?.close();
	});

	it('shows a chat Ana starts on another node in Ben’s open list within a second, without a reload', async () => {
		const [ana, ben] = [await user(0, 'ana'), await user(1, 'ben')];
		expect(await listedRooms(ben.page)).toEqual([]);
		const appeared = nextNewRoom(ben.page, []);

		const created = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		const answeredAt = Date.now();
		expect(created.status).toBe(201);

		const { id, at } = await appeared;
		expect(id).toBe(created.body.id);
		expect(at - answeredAt, 'ms from the API answer to the room in Ben’s list').toBeLessThan(
			NEW_ROOM_WITHIN_MS,
		);
		await expect.poll(() => ben.page.getByTestId('room-item').textContent()).toContain(ana.name);
		expect(ben.session.errors(ben.page)).toEqual([]);
	});

	it('moves a room with a new message to the top of the other member’s list', async () => {
		const [ana, ben] = [await user(0, 'ana'), await user(1, 'ben')];
		const direct = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		const group = await api(ana, 'POST', '/api/rooms', {
			name: 'Design',
			isGroup: true,
			memberIds: [ben.id],
		});
		expect([direct.status, group.status]).toEqual([201, 201]);
		// The newest room is on top.
		await expect
			.poll(() => listedRooms(ben.page), { timeout: UI_TIMEOUT })
			.toEqual([group.body.id, direct.body.id]);

		await say(ana, direct.body.id, 'the older room speaks');
		await expect
			.poll(() => listedRooms(ben.page), { timeout: UI_TIMEOUT })
			.toEqual([direct.body.id, group.body.id]);
		const top = ben.page.getByTestId('room-item').first();
		await expect.poll(() => top.textContent()).toContain('the older room speaks');
		expect(ben.session.errors(ben.page)).toEqual([]);
	});

	it('shows Cleo a group she is added to, within a second, without a reload', async () => {
		const [ana, cleo] = [await user(0, 'ana'), await user(1, 'cleo')];
		const group = await api(ana, 'POST', '/api/rooms', { name: 'Launch', isGroup: true, memberIds: [] });
		expect(group.status).toBe(201);
		expect(await listedRooms(cleo.page)).toEqual([]);
		const appeared = nextNewRoom(cleo.page, []);

		const added = await api(ana, 'POST', `/api/rooms/${group.body.id}/members`, { userId: cleo.id });
		const answeredAt = Date.now();
		expect(added.status).toBe(201);

		const { id, at } = await appeared;
		expect(id).toBe(group.body.id);
		expect(at - answeredAt, 'ms from the API answer to the group in Cleo’s list').toBeLessThan(
			NEW_ROOM_WITHIN_MS,
		);
		await expect.poll(() => cleo.page.getByTestId('room-item').textContent()).toContain('Launch');
		expect(cleo.session.errors(cleo.page)).toEqual([]);
	});

	it('shows the unread total in the tab title, less what the user has read', async () => {
		const [ana, ben] = [await user(0, 'ana'), await user(1, 'ben')];
		const direct = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		const group = await api(ana, 'POST', '/api/rooms', { name: 'Ops', isGroup: true, memberIds: [ben.id] });
		await expect.poll(() => listedRooms(ben.page), { timeout: UI_TIMEOUT }).toHaveLength(2);
		expect(await ben.page.title()).toBe('Chat');
		// What the server tells Ben's app from here on (the app keeps its rooms open: protocol 6 counts there).
		const heard: string[] = [];
		ben.page.on('websocket', (ws) =>
			ws.on('framereceived', ({ payload }) => heard.push(Buffer.from(payload).toString('latin1'))),
		);
		await ben.page.reload();
		await expect.poll(() => listedRooms(ben.page), { timeout: UI_TIMEOUT }).toHaveLength(2);
		await expect
			.poll(() => heard.some((f) => f.includes('"type":"state"')), { timeout: UI_TIMEOUT })
			.toBe(true);
		// Both rooms open and synced beside the channel (the app opens them once the list has painted): until then
		// the server rightly tells the channel of their messages.
		await expect
			.poll(async () => (await roomSynced(ben, direct.body.id)) && (await roomSynced(ben, group.body.id)), {
				timeout: UI_TIMEOUT,
			})
			.toBe(true);

		await say(ana, direct.body.id, 'one');
		await say(ana, direct.body.id, 'two');
		await say(ana, group.body.id, `three for @${ben.name}`);
		await expect.poll(() => ben.page.title(), { timeout: UI_TIMEOUT }).toBe('(3) Chat');
		const badge = ben.page.locator(`[data-room-id="${direct.body.id}"] [data-testid="unread-count"]`);
		expect(await badge.textContent()).toBe('2');
		const inGroup = ben.page.locator(`[data-room-id="${group.body.id}"]`);
		await inGroup.getByTestId('mention-count').waitFor({ timeout: UI_TIMEOUT });
		expect(await listedRooms(ben.page)).toEqual([group.body.id, direct.body.id]);
		// Counted and ordered on the device: the server's re-read would have come within a fraction of this.
		await ben.page.waitForTimeout(1_000);
		expect(heard.filter((f) => f.includes('"type":"notify"'))).toHaveLength(3);
		expect(heard.filter((f) => f.includes('"type":"room-activity"'))).toEqual([]);

		// Reading the 1:1 room leaves the group's one message.
		await ben.page.locator(`[data-room-id="${direct.body.id}"]`).click();
		await ben.page.getByTestId('composer').waitFor({ timeout: UI_TIMEOUT });
		await expect.poll(() => ben.page.title(), { timeout: UI_TIMEOUT }).toBe(`(1) ${ana.name} · Chat`);
		await ben.page.getByRole('link', { name: 'Back to rooms' }).click();
		await expect.poll(() => ben.page.title(), { timeout: UI_TIMEOUT }).toBe('(1) Chat');
		expect(ben.session.errors(ben.page)).toEqual([]);
	});

	it('publishes Ben’s presence only in the room on his screen, not in the rooms open behind it', async () => {
		const [ana, ben] = [await user(0, 'ana'), await user(1, 'ben')];
		const direct = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		const group = await api(ana, 'POST', '/api/rooms', { name: 'Desk', isGroup: true, memberIds: [ben.id] });
		const [directId, groupId] = [direct.body.id as string, group.body.id as string];
		// Ana watches both rooms' awareness from the other node.
		const watch = (roomId: string) => {
			const client = connect(`${ana.url.replace(/^http/, 'ws')}/collab`, roomId, ana.accessToken, ana.id);
			clients.push(client);
			return () =>
				[...client.provider.awareness!.getStates().values()].some(
					(state) => (state as { user?: { id?: string } }).user?.id === ben.id,
				);
		};
		const [benInDirect, benInGroup] = [watch(directId), watch(groupId)];
		await expect.poll(() => listedRooms(ben.page), { timeout: UI_TIMEOUT }).toHaveLength(2);
		// Both rooms open and synced in Ben's app behind the list: before, each said he was there.
		await expect
			.poll(async () => (await roomSynced(ben, directId)) && (await roomSynced(ben, groupId)), {
				timeout: UI_TIMEOUT,
			})
			.toBe(true);
		await ben.page.waitForTimeout(1_000);
		expect([benInDirect(), benInGroup()]).toEqual([false, false]);

		await ben.page.locator(`[data-room-id="${groupId}"]`).click();
		await expect.poll(benInGroup, { timeout: UI_TIMEOUT }).toBe(true);
		expect(benInDirect()).toBe(false);
		// Back to the list: gone from the group at once, not after the 30-s timeout.
		await ben.page.getByRole('link', { name: 'Back to rooms' }).click();
		await expect.poll(benInGroup, { timeout: 5_000 }).toBe(false);
		await ben.page.locator(`[data-room-id="${directId}"]`).click();
		await expect.poll(benInDirect, { timeout: UI_TIMEOUT }).toBe(true);
		expect(benInGroup()).toBe(false);
		expect(ben.session.errors(ben.page)).toEqual([]);
	});

	it('rests the channel’s heartbeat while a live room is on screen, and stays connected alone in a room', async () => {
		const ben = await user(1, 'ben');
		const notes = await api(ben, 'POST', '/api/rooms', { name: 'Notes', isGroup: true, memberIds: [] });
		expect(notes.status).toBe(201);
		const roomId = notes.body.id as string;
		await expect.poll(() => listedRooms(ben.page), { timeout: UI_TIMEOUT }).toEqual([roomId]);
		// Ben's channel as another device of his sees it, from the other node.
		const watcher = openChannel(
			`${(cluster.urls[0] as string).replace(/^http/, 'ws')}/collab`,
			ben.id,
			ben.accessToken,
		);
		try {
			const own = watcher.provider.document.clientID;
			const beats = () =>
				[...(watcher.provider.awareness?.getStates().keys() ?? [])].some((id) => id !== own);
			// Node A learns Ben's state from B's answer to its query when it opens the channel, or else from his next
			// renewal (every 15 s): more than UI_TIMEOUT after a missed answer (one CI run in four, 2026-12-03).
			await expect.poll(beats, { timeout: 25_000 }).toBe(true);
			const sockets: string[] = [];
			ben.page.on('websocket', (ws) => sockets.push(ws.url()));
			await ben.page.locator(`[data-room-id="${roomId}"]`).click();
			await ben.page.getByTestId('composer').waitFor({ timeout: UI_TIMEOUT });
			await expect.poll(beats, { timeout: UI_TIMEOUT }).toBe(false);
			// Alone in the room and the channel at rest: the room's own presence keeps the socket open both ways past
			// the server's 30-s timeout and the provider's.
			await ben.page.waitForTimeout(35_000);
			expect(sockets).toEqual([]);
			expect(beats()).toBe(false);
			await ben.page.getByRole('link', { name: 'Back to rooms' }).click();
			await expect.poll(beats, { timeout: UI_TIMEOUT }).toBe(true);
			expect(ben.session.errors(ben.page)).toEqual([]);
		} finally {
			watcher.destroy();
		}
	}, 90_000);

	it('turns a room read-only when Ben is removed, and Dismiss forgets its copy on the device', async () => {
		const [ana, ben] = [await user(0, 'ana'), await user(1, 'ben')];
		const group = await api(ana, 'POST', '/api/rooms', { name: 'Plans', isGroup: true, memberIds: [ben.id] });
		const roomId = group.body.id as string;
		await ben.page.locator(`[data-room-id="${roomId}"]`).click();
		await ben.page.getByTestId('composer').waitFor({ timeout: UI_TIMEOUT });
		expect(await ben.page.getByTestId('composer').isEnabled()).toBe(true);

		expect((await api(ana, 'DELETE', `/api/rooms/${roomId}/members/${ben.id}`)).status).toBe(204);
		const notice = ben.page.getByTestId('room-removed');
		await notice.waitFor({ timeout: UI_TIMEOUT });
		expect(await notice.textContent()).toContain('You were removed from this room');
		expect(await ben.page.getByTestId('composer').isDisabled()).toBe(true);

		const database = `chat-${ben.id}-room-${roomId}`;
		const databases = () =>
			ben.page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name ?? ''));
		expect(await databases()).toContain(database);
		await notice.getByRole('button', { name: 'Dismiss' }).click();
		await ben.page.waitForURL(`${ben.url}/`, { timeout: UI_TIMEOUT });
		await expect.poll(databases, { timeout: UI_TIMEOUT }).not.toContain(database);
		expect(await listedRooms(ben.page)).not.toContain(roomId);
		expect(ben.session.errors(ben.page)).toEqual([]);
	});

	it('says a room does not exist or is not yours, without a banner or a composer', async () => {
		const [ana, ben] = [await user(0, 'ana'), await user(1, 'ben')];
		const anasOwn = await api(ana, 'POST', '/api/rooms', { name: 'Private', isGroup: true, memberIds: [] });
		for (const roomId of [anasOwn.body.id as string, randomUUID()]) {
			await ben.page.goto(`${ben.url}/rooms/${roomId}`);
			await ben.page.getByTestId('room-unavailable').waitFor({ timeout: UI_TIMEOUT });
			expect(await ben.page.getByTestId('room-unavailable').textContent()).toContain(
				'This room does not exist or you are not a member',
			);
			expect(await ben.page.getByTestId('composer').count()).toBe(0);
			// Watched for a moment: the banner never says it is reconnecting to a room that is not there.
			for (let i = 0; i < 5; i++) {
				expect(await ben.page.getByTestId('connection-status').getAttribute('data-status')).toBe('synced');
				await ben.page.waitForTimeout(200);
			}
		}
		expect(ben.session.errors(ben.page)).toEqual([]);
	});

	it('signs Ben’s other device out, with the reason, when he changes his password', async () => {
		const ben = await user(0, 'ben');
		const otherSession = await browser.newSession();
		sessions.push(otherSession);
		const other: BrowserUser = {
			...ben,
			session: otherSession,
			page: await otherSession.page(),
			url: cluster.urls[1] as string,
		};
		await signIn(other);

		await ben.page.getByTestId('account-link').click();
		const form = ben.page.getByTestId('change-password');
		await form.getByLabel('Current password').fill(PASSWORD);
		await form.getByLabel('New password').fill('a brand new passphrase');
		await form.getByRole('button', { name: 'Change password' }).click();
		await form.getByRole('status').waitFor({ timeout: UI_TIMEOUT });

		await other.page.waitForURL(`${other.url}/login`, { timeout: UI_TIMEOUT });
		expect(await other.page.getByTestId('signed-out-reason').textContent()).toBe(
			'Your password was changed.',
		);
		// The device that changed it stays signed in.
		expect(await ben.page.getByTestId('current-user').textContent()).toBe(ben.name);
		expect(other.session.errors(other.page)).toEqual([]);
	});

	it('deletes the account from the account page and says so on the sign-in page', async () => {
		const ben = await user(1, 'ben');
		await ben.page.getByTestId('account-link').click();
		const section = ben.page.getByTestId('delete-account');
		await section.getByRole('button', { name: 'Delete my account…' }).click();
		expect(await section.textContent()).toContain('shown as “Deleted user”');
		await section.getByLabel('Password').fill('not the password');
		await section.getByRole('button', { name: 'Delete my account' }).click();
		await expect
			.poll(() => section.getByRole('alert').textContent(), { timeout: UI_TIMEOUT })
			.toBe('The password is not right.');

		await section.getByLabel('Password').fill(PASSWORD);
		await section.getByRole('button', { name: 'Delete my account' }).click();
		await ben.page.waitForURL(`${ben.url}/login`, { timeout: UI_TIMEOUT });
		expect(await ben.page.getByTestId('signed-out-reason').textContent()).toBe('This account was deleted.');
		expect((await api(ben, 'GET', '/api/me')).status).toBe(401);
		// …and the account cannot sign in again.
		const login = await fetch(`${ben.url}/api/auth/login`, {
			method: 'POST',
			headers: { 'content-type': 'application/json' },
			body: JSON.stringify({ name: ben.name, password: PASSWORD }),
		});
		expect(login.status).toBe(401);
	});

	it('asks for a reload when the server speaks a newer protocol, and the reload works in a tab no worker controls', async () => {
		const session = await browser.newSession();
		sessions.push(session);
		// The server of the future: the channel's `state` says a higher protocol version (same length, so the
		// frame's encoding stays valid).
		await session.context.routeWebSocket(/\/collab(\?|$)/, (ws) => {
			const server = ws.connectToServer();
			ws.onMessage((message) => server.send(message));
			server.onMessage((message) => {
				if (typeof message === 'string') return ws.send(message);
				const text = message
					.toString('latin1')
					.replace(`"protocolVersion":${PROTOCOL_VERSION}`, '"protocolVersion":9');
				ws.send(Buffer.from(text, 'latin1'));
			});
		});
		const ben = await signUp(session, cluster.urls[1] as string, 'ben');
		const bar = ben.page.getByTestId('update-bar');
		await bar.waitFor({ timeout: UI_TIMEOUT });
		expect(await bar.textContent()).toContain('A newer version of Chat is available');
		expect(await ben.page.evaluate(() => !!navigator.serviceWorker.controller)).toBe(false);

		await ben.page.evaluate(() => Object.assign(window, { __beforeReload: true }));
		await bar.getByRole('button', { name: 'Reload' }).click();
		await expect
			.poll(() => ben.page.evaluate(() => '__beforeReload' in window), {
				timeout: UI_TIMEOUT,
			})
			.toBe(false);
		await ben.page.getByTestId('update-bar').waitFor({ timeout: UI_TIMEOUT });
		expect(ben.session.errors(ben.page)).toEqual([]);
	});
});

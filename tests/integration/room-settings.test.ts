import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachBackend } from '../helpers/backends.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

/**
 * A group's settings over HTTP (issue 20): rename and topic, handing the group over, and leaving it, with who may
 * do what. The browser side is tests/e2e/room-settings.test.ts.
 */
describeEachBackend('room settings', (backend) => {
	let server: TestServer;
	beforeAll(async () => {
		server = await startTestServer(backend);
	});
	afterAll(async () => {
		await server?.close();
	});

	const roleOf = (room: { members: { id: string; role: string }[] }, id: string) =>
		room.members.find((m) => m.id === id)?.role;

	it('lets the owner and admins rename a group and set its topic; members, 1:1 rooms and bad input are refused', async () => {
		const owner = await server.api.register('rena');
		const admin = await server.api.register('radm');
		const member = await server.api.register('rmem');
		const room = await server.api.createGroup(owner.accessToken, [admin.user.id, member.user.id], 'Old name');
		await server.api.patch(
			`/api/rooms/${room.id}/members/${admin.user.id}`,
			{ role: 'admin' },
			owner.accessToken,
		);

		const renamed = await server.api.patch(
			`/api/rooms/${room.id}`,
			{ name: '  Launch  ', topic: 'Release 2.4, Friday' },
			owner.accessToken,
		);
		expect(renamed.status).toBe(200);
		expect(renamed.body).toMatchObject({ name: 'Launch', topic: 'Release 2.4, Friday' });
		const byAdmin = await server.api.patch(
			`/api/rooms/${room.id}`,
			{ topic: 'Ships Monday' },
			admin.accessToken,
		);
		expect(byAdmin.body).toMatchObject({ name: 'Launch', topic: 'Ships Monday' });
		// Every member's list shows the new name and topic.
		const listed = await server.api.get('/api/rooms', member.accessToken);
		expect(listed.body.items.find((r: { id: string }) => r.id === room.id)).toMatchObject({
			name: 'Launch',
			topic: 'Ships Monday',
		});

		const refused = await server.api.patch(`/api/rooms/${room.id}`, { name: 'Mine now' }, member.accessToken);
		expect(refused.status).toBe(403);
		expect(refused.body.error.message).toMatch(/owner or an admin/);
		for (const body of [
			{},
			{ name: '' },
			{ name: 'x'.repeat(81) },
			{ topic: 'x'.repeat(251) },
			{ color: 'red' },
		]) {
			const bad = await server.api.patch(`/api/rooms/${room.id}`, body, owner.accessToken);
			expect(bad.status, JSON.stringify(body)).toBe(400);
		}
		// An empty topic removes it.
		const cleared = await server.api.patch(`/api/rooms/${room.id}`, { topic: '' }, owner.accessToken);
		expect(cleared.body).toMatchObject({ name: 'Launch', topic: null });

		const direct = await server.api.post(
			'/api/rooms',
			{ isGroup: false, memberIds: [member.user.id] },
			owner.accessToken,
		);
		const renameDirect = await server.api.patch(
			`/api/rooms/${direct.body.id}`,
			{ name: 'Us' },
			owner.accessToken,
		);
		expect(renameDirect.status).toBe(400);
		const stranger = await server.api.register('rstr');
		expect(
			(await server.api.patch(`/api/rooms/${room.id}`, { name: 'X' }, stranger.accessToken)).status,
		).toBe(404);
	});

	it('hands a group over: only its owner may, and becomes an admin', async () => {
		const owner = await server.api.register('hown');
		const heir = await server.api.register('heir');
		const admin = await server.api.register('hadm');
		const room = await server.api.createGroup(owner.accessToken, [heir.user.id, admin.user.id]);
		await server.api.patch(
			`/api/rooms/${room.id}/members/${admin.user.id}`,
			{ role: 'admin' },
			owner.accessToken,
		);
		const byAdmin = await server.api.patch(
			`/api/rooms/${room.id}/members/${heir.user.id}`,
			{ role: 'owner' },
			admin.accessToken,
		);
		expect(byAdmin.status).toBe(403);
		const handed = await server.api.patch(
			`/api/rooms/${room.id}/members/${heir.user.id}`,
			{ role: 'owner' },
			owner.accessToken,
		);
		expect(handed.status).toBe(200);
		expect(roleOf(handed.body, heir.user.id)).toBe('owner');
		expect(roleOf(handed.body, owner.user.id)).toBe('admin');
		expect(handed.body.members.filter((m: { role: string }) => m.role === 'owner')).toHaveLength(1);
		// The former owner is an admin now: they can no longer hand it over again.
		const again = await server.api.patch(
			`/api/rooms/${room.id}/members/${admin.user.id}`,
			{ role: 'owner' },
			owner.accessToken,
		);
		expect(again.status).toBe(403);
	});

	it('an owner who leaves hands the group to its longest-standing admin; the last member to leave deletes it', async () => {
		const owner = await server.api.register('lown');
		const first = await server.api.register('lfst');
		const admin = await server.api.register('ladm');
		const room = await server.api.createGroup(owner.accessToken, [first.user.id, admin.user.id]);
		await server.api.patch(
			`/api/rooms/${room.id}/members/${admin.user.id}`,
			{ role: 'admin' },
			owner.accessToken,
		);

		const left = await server.api.delete(`/api/rooms/${room.id}/members/${owner.user.id}`, owner.accessToken);
		expect(left.status).toBe(204);
		expect((await server.api.get(`/api/rooms/${room.id}`, owner.accessToken)).status).toBe(404);
		const after = await server.api.get(`/api/rooms/${room.id}`, first.accessToken);
		expect(roleOf(after.body, admin.user.id)).toBe('owner');
		expect(roleOf(after.body, first.user.id)).toBe('member');

		// The new owner removes the member, then leaves alone: the group is gone.
		await server.api.delete(`/api/rooms/${room.id}/members/${first.user.id}`, admin.accessToken);
		expect(
			(await server.api.delete(`/api/rooms/${room.id}/members/${admin.user.id}`, admin.accessToken)).status,
		).toBe(204);
		const { rows } = await server.app.db.query('SELECT 1 FROM rooms WHERE id = $1', [room.id]);
		expect(rows).toHaveLength(0);
	});
});

import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { chromiumAvailable, waitForApp } from '../helpers/browser.ts';
import { appAndBrowser } from '../helpers/e2e-suite.ts';
import { api, signUp, UI_TIMEOUT } from '../helpers/live-ui.ts';

/**
 * A group's settings in the browser (issue 20, check 3): the owner renames it and sets a topic, changes a role and
 * removes a member, who sees the room turn read-only; a member leaves; the owner leaves and the group passes to
 * its admin; the last member leaves and the group is gone. The HTTP rules are tests/integration/room-settings.test.ts.
 */

const app = appAndBrowser();

async function openRoom(page: Page, roomId: string): Promise<void> {
	await page.goto(`${app.url()}/rooms/${roomId}`);
	await waitForApp(page);
	await page.getByTestId('composer').waitFor();
}

async function openSettings(page: Page): Promise<void> {
	await page.getByTestId('members-toggle').click();
	await page.getByTestId('member-panel').waitFor();
}

const member = (page: Page, u: { id: string }) =>
	page.locator(`[data-testid="member"][data-user-id="${u.id}"]`);

async function confirm(page: Page, text: RegExp): Promise<void> {
	const dialog = page.getByTestId('settings-confirm');
	await dialog.waitFor();
	expect(await dialog.textContent()).toMatch(text);
	await page.getByTestId('settings-confirm-yes').click();
}

describe.skipIf(!chromiumAvailable)('room settings in the browser', () => {
	const user = async (prefix: string) => signUp(await app.session(), app.url(), prefix);

	it('the owner renames, changes a role and removes; members leave; the group passes on and ends', async () => {
		const [ana, ben, cleo, dan] = await Promise.all(['ana', 'ben', 'cleo', 'dan'].map(user));
		const created = await api(ana!, 'POST', '/api/rooms', {
			name: 'Draft name',
			isGroup: true,
			memberIds: [ben!.id, cleo!.id, dan!.id],
		});
		const roomId = created.body.id as string;
		await Promise.all([ana, ben, cleo, dan].map((u) => openRoom(u!.page, roomId)));

		// Ben, a plain member, sees no rename form and no role controls.
		await openSettings(ben!.page);
		expect(await ben!.page.getByTestId('room-details').count()).toBe(0);
		expect(await ben!.page.getByTestId('member-role').count()).toBe(0);

		// Ana renames the group and sets a topic: everyone's header follows.
		const { page } = ana!;
		await openSettings(page);
		await page.getByTestId('room-name-input').fill('Launch crew');
		await page.getByTestId('room-topic-input').fill('Ship 2.4 on Friday');
		await page.getByTestId('save-room-details').click();
		for (const u of [ana, ben]) {
			await expect
				.poll(() => u!.page.getByRole('heading', { level: 1 }).textContent(), { timeout: UI_TIMEOUT })
				.toBe('Launch crew');
			await expect
				.poll(() => u!.page.getByTestId('room-topic').textContent(), { timeout: UI_TIMEOUT })
				.toBe('Ship 2.4 on Friday');
		}

		// Ana makes Cleo an admin.
		await member(page, cleo!).getByTestId('member-role').selectOption('admin');
		await expect
			.poll(() => member(page, cleo!).getAttribute('data-role'), { timeout: UI_TIMEOUT })
			.toBe('admin');

		// Ana adds Eve from the picker: Eve is not offered again.
		const eve = await fetch(`${app.url()}/api/auth/register`, {
			method: 'POST',
			headers: { 'content-type': 'application/json' },
			body: JSON.stringify({ name: `eve-${ana!.name.slice(4)}`, password: 'correct horse battery' }),
		}).then((r) => r.json() as Promise<{ user: { id: string; name: string } }>);
		await page.getByLabel('Add a member').fill(eve.user.name);
		await page.getByRole('button', { name: `Add ${eve.user.name}`, exact: true }).click();
		await expect.poll(() => page.getByTestId('user-result').count(), { timeout: UI_TIMEOUT }).toBe(0);
		await page
			.locator(`[data-testid="member"][data-user-id="${eve.user.id}"]`)
			.waitFor({ timeout: UI_TIMEOUT });

		// Ana removes Ben: his room turns read-only at once.
		await member(page, ben!).getByTestId('remove-member').click();
		await confirm(page, /Remove ben-/);
		await ben!.page.getByTestId('room-removed').waitFor({ timeout: UI_TIMEOUT });
		expect(await ben!.page.getByTestId('composer').isDisabled()).toBe(true);
		await expect.poll(() => member(page, ben!).count(), { timeout: UI_TIMEOUT }).toBe(0);

		// Dan leaves: back on his list, without the room.
		await openSettings(dan!.page);
		await dan!.page.getByTestId('leave-room').click();
		await confirm(dan!.page, /someone must add you/);
		await dan!.page.waitForURL(`${app.url()}/`, { timeout: UI_TIMEOUT });
		await expect
			.poll(() => dan!.page.locator(`[data-testid="room-item"][data-room-id="${roomId}"]`).count())
			.toBe(0);

		// Ana, the owner, leaves: she is told Cleo (the admin) becomes the owner, and Cleo is.
		await page.getByTestId('leave-room').click();
		await confirm(page, new RegExp(`${cleo!.name} becomes its owner`));
		await page.waitForURL(`${app.url()}/`, { timeout: UI_TIMEOUT });
		await openSettings(cleo!.page);
		await cleo!.page.getByTestId('room-details').waitFor({ timeout: UI_TIMEOUT });
		const after = await api(cleo!, 'GET', `/api/rooms/${roomId}`);
		expect(after.body.members).toEqual([
			expect.objectContaining({ id: cleo!.id, role: 'owner' }),
			expect.objectContaining({ id: eve.user.id, role: 'member' }),
		]);
		// As the owner now, Cleo removes Eve.
		await member(cleo!.page, eve.user).getByTestId('remove-member').click();
		await confirm(cleo!.page, /Remove eve-/);
		await expect
			.poll(() => cleo!.page.locator(`[data-testid="member"][data-user-id="${eve.user.id}"]`).count())
			.toBe(0);

		// Cleo, alone, is told the group is deleted when she leaves, and it is.
		await cleo!.page.getByTestId('leave-room').click();
		await confirm(cleo!.page, /last member: the group and its messages are deleted/);
		await cleo!.page.waitForURL(`${app.url()}/`, { timeout: UI_TIMEOUT });
		expect((await api(cleo!, 'GET', `/api/rooms/${roomId}`)).status).toBe(404);
		for (const u of [ana, cleo, dan]) expect(u!.session.errors(u!.page), u!.name).toEqual([]);
	});

	it('shows no roles in a 1:1 room, and counts yourself online', async () => {
		const [ana, ben] = await Promise.all([user('ana'), user('ben')]);
		const direct = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		await openRoom(ana.page, direct.body.id);
		await openSettings(ana.page);
		await member(ana.page, ana).waitFor();
		expect(await ana.page.getByTestId('member-role-label').count()).toBe(0);
		expect(await ana.page.getByTestId('leave-room').count()).toBe(0);
		await expect.poll(() => member(ana.page, ana).textContent(), { timeout: UI_TIMEOUT }).toContain('online');
	});
});

import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
	chromiumAvailable,
	ensureBuilt,
	launchBrowser,
	waitForApp,
	type BrowserSession,
	type SharedBrowser,
} from '../helpers/browser.ts';
import { canRunCluster, startCluster, type Cluster } from '../helpers/cluster.ts';
import { UI_TIMEOUT, api, controlledByWorker, signUp, type BrowserUser } from '../helpers/live-ui.ts';
import { tmpDir } from '../helpers/server.ts';

/**
 * Attachments in the browser (issue 19, done-when 1): Ana, offline, pastes an image and drops a PDF into the
 * composer and sends them with a caption; the message shows at once, waiting for a connection, and survives a
 * reload with no network; back online its files upload and it is written, and Ben, on the other node of a
 * two-node cluster, sees the image inline and the PDF as a card, exactly once.
 */

let cluster: Cluster;
let browser: SharedBrowser;
let filesDir: string;
const sessions: BrowserSession[] = [];

async function user(node: number, prefix: string): Promise<BrowserUser> {
	const session = await browser.newSession();
	sessions.push(session);
	return signUp(session, cluster.urls[node] as string, prefix);
}

/** Pastes a file into the composer, as the clipboard of a screenshot tool would hand it over. */
async function paste(page: Page, name: string, type: string, bytes: Buffer): Promise<void> {
	await page.getByTestId('composer').evaluate(
		(target, { name, type, base64 }) => {
			const data = new DataTransfer();
			data.items.add(new File([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], name, { type }));
			target.dispatchEvent(
				new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }),
			);
		},
		{ name, type, base64: bytes.toString('base64') },
	);
}

/** Drops a file onto the composer, as a file manager would. */
async function drop(page: Page, name: string, type: string, bytes: Buffer): Promise<void> {
	await page.getByTestId('composer-form').evaluate(
		(target, { name, type, base64 }) => {
			const data = new DataTransfer();
			data.items.add(new File([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], name, { type }));
			for (const kind of ['dragenter', 'dragover', 'drop'])
				target.dispatchEvent(new DragEvent(kind, { dataTransfer: data, bubbles: true, cancelable: true }));
		},
		{ name, type, base64: bytes.toString('base64') },
	);
}

/** The rendered messages whose text holds `tag`. */
const tagged = (page: Page, tag: string) =>
	page.getByTestId('message').filter({ has: page.getByTestId('message-content').getByText(tag) });

/** A photo-sized PNG: 1600×900, so that the server's thumbnail (480 px at most) is smaller than the file. */
function photo(): Promise<Buffer> {
	return sharp({ create: { width: 1600, height: 900, channels: 3, background: { r: 40, g: 120, b: 200 } } })
		.composite([
			{
				input: { create: { width: 400, height: 300, channels: 3, background: { r: 250, g: 200, b: 40 } } },
				left: 200,
				top: 200,
			},
		])
		.png()
		.toBuffer();
}

const PDF = Buffer.from(
	'%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n' +
		'trailer << /Root 1 0 R >>\n%%EOF\n',
);

/** The cluster's ATTACHMENT_MAX_BYTES: 2 MB, so that a file over it is quick to make. */
const LIMIT = 2 * 1024 * 1024;

describe.skipIf(!chromiumAvailable || !canRunCluster)('attachments in the browser', () => {
	beforeAll(async () => {
		const client = await ensureBuilt();
		// Both nodes store files in one place, as docker-compose's shared volume (or one S3 bucket) does.
		filesDir = tmpDir('attachments-e2e');
		cluster = await startCluster(2, () => ({
			STATIC_DIR: client,
			DATA_DIR: filesDir,
			ATTACHMENT_MAX_BYTES: String(LIMIT),
		}));
		browser = await launchBrowser();
	}, 180_000);

	afterEach(async () => {
		while (sessions.length) await sessions.pop()?.close();
	});

	afterAll(async () => {
		await browser?.close();
		await cluster?.close();
		if (filesDir) fs.rmSync(filesDir, { recursive: true, force: true });
	});

	it('an image pasted and a PDF dropped offline survive a reload, then reach Ben on the other node once', async () => {
		const ana = await user(0, 'ana');
		const ben = await user(1, 'ben');
		const created = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		expect(created.status).toBe(201);
		const roomId = created.body.id as string;
		const tag = randomBytes(4).toString('hex');
		const caption = `Holiday plans ${tag}`;

		await ana.page.goto(`${ana.url}/rooms/${roomId}`);
		await waitForApp(ana.page);
		await controlledByWorker(ana.page);
		await ana.page.getByTestId('composer').waitFor({ timeout: UI_TIMEOUT });
		await ben.page.goto(`${ben.url}/rooms/${roomId}`);
		await waitForApp(ben.page);
		await ben.page.getByTestId('composer').waitFor({ timeout: UI_TIMEOUT });

		// Offline: paste, drop, caption, Enter. The message is there at once, waiting for a connection.
		await ana.session.context.setOffline(true);
		await paste(ana.page, 'beach.png', 'image/png', await photo());
		await drop(ana.page, 'plan.pdf', 'application/pdf', PDF);
		await expect.poll(() => ana.page.getByTestId('composer-file').count()).toBe(2);
		await ana.page.getByTestId('composer').fill(caption);
		await ana.page.getByTestId('composer').press('Enter');
		const mine = tagged(ana.page, tag);
		await mine.waitFor({ timeout: UI_TIMEOUT });
		await expect
			.poll(() => mine.getByTestId('upload-state').getAttribute('data-state'), { timeout: UI_TIMEOUT })
			.toBe('waiting');
		expect(await mine.getByTestId('message-state').textContent()).toContain('Waiting for connection');
		// The local preview takes its final place at once: 320 px wide for a 16:9 photo, 180 high.
		const preview = mine.getByTestId('attachment-image');
		await expect.poll(() => preview.getAttribute('data-loaded'), { timeout: UI_TIMEOUT }).toBe('true');
		const box = await preview.boundingBox();
		expect(box && Math.round(box.width)).toBe(320);
		expect(box && Math.round(box.height)).toBe(180);
		expect(await mine.getByTestId('attachment-file').getAttribute('data-name')).toBe('plan.pdf');

		// A reload with no network: the shell from the service worker, the message and its files from IndexedDB.
		const reloaded = await ana.page.reload();
		expect(reloaded?.fromServiceWorker()).toBe(true);
		await waitForApp(ana.page);
		await mine.waitFor({ timeout: UI_TIMEOUT });
		await expect
			.poll(() => mine.getByTestId('upload-state').getAttribute('data-state'), { timeout: UI_TIMEOUT })
			.toBe('waiting');
		await expect.poll(() => preview.getAttribute('data-loaded'), { timeout: UI_TIMEOUT }).toBe('true');
		expect(await mine.getByTestId('attachment-file').count()).toBe(1);
		expect(await tagged(ben.page, tag).count()).toBe(0);

		// Online: the files upload, then the message is written and acknowledged.
		await ana.session.context.setOffline(false);
		await expect.poll(() => mine.getAttribute('data-status'), { timeout: 4 * UI_TIMEOUT }).toBe('synced');
		expect(await mine.getByTestId('upload-state').count()).toBe(0);

		// Ben, on the other node: the image inline (the server's thumbnail), the PDF as a card, exactly once.
		const theirs = tagged(ben.page, tag);
		await theirs.waitFor({ timeout: UI_TIMEOUT });
		const image = theirs.getByTestId('attachment-image');
		await expect.poll(() => image.getAttribute('data-loaded'), { timeout: UI_TIMEOUT }).toBe('true');
		const natural = await image.locator('img').evaluate(async (img: HTMLImageElement) => {
			await img.decode();
			return { width: img.naturalWidth, height: img.naturalHeight };
		});
		expect(natural).toEqual({ width: 480, height: 270 });
		const card = theirs.getByTestId('attachment-file');
		expect(await card.getAttribute('data-name')).toBe('plan.pdf');
		expect(await card.textContent()).toContain('PDF');
		expect(await theirs.getByTestId('message-content').textContent()).toBe(caption);

		// The lightbox shows the image itself; Escape closes it.
		await image.click();
		const lightbox = ben.page.getByTestId('lightbox');
		await expect.poll(() => lightbox.getByTestId('lightbox-name').textContent()).toBe('beach.png');
		await expect
			.poll(
				() => lightbox.locator('img').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth),
				{
					timeout: UI_TIMEOUT,
				},
			)
			.toBe(1600);
		await ben.page.keyboard.press('Escape');
		await expect.poll(() => lightbox.evaluate((d: HTMLDialogElement) => d.open)).toBe(false);

		// Exactly once, on both sides, after a reload of Ben's page too.
		await ben.page.reload();
		await waitForApp(ben.page);
		// The picture of the room kept for the next start names no image by a URL of the page before (blob:).
		const kept = await ben.page.evaluate(() =>
			Object.keys(localStorage)
				.filter((key) => key.startsWith('chat-boot-screen:'))
				.map((key) => localStorage.getItem(key) ?? ''),
		);
		expect(kept.some((page) => page.includes('beach.png'))).toBe(true);
		expect(kept.filter((page) => page.includes('blob:'))).toEqual([]);
		await tagged(ben.page, tag).first().waitFor({ timeout: UI_TIMEOUT });
		expect(await tagged(ben.page, tag).count()).toBe(1);
		expect(await tagged(ana.page, tag).count()).toBe(1);
		for (const u of [ana, ben])
			for (const page of u.session.context.pages())
				expect(u.session.errors(page), `console errors of ${u.name}`).toEqual([]);
	});

	it('says before any upload that a file is too big; a waiting message can be cancelled; seen files are kept within a budget', async () => {
		const ana = await user(0, 'ana');
		const ben = await user(1, 'ben');
		const created = await api(ana, 'POST', '/api/rooms', { isGroup: false, memberIds: [ben.id] });
		const roomId = created.body.id as string;
		await ana.page.goto(`${ana.url}/rooms/${roomId}`);
		await waitForApp(ana.page);
		await controlledByWorker(ana.page);
		await ana.page.getByTestId('composer').waitFor({ timeout: UI_TIMEOUT });

		// Too big: named in the composer at once, and nothing is kept or sent.
		await drop(ana.page, 'huge.bin', 'application/octet-stream', Buffer.alloc(LIMIT + 1));
		await expect
			.poll(() => ana.page.locator('#composer-help').textContent())
			.toContain('huge.bin: over 2 MB, the largest file this server takes');
		expect(await ana.page.getByTestId('composer-file').count()).toBe(0);

		// Cancelled while waiting: gone, and still gone after a reload; Ben never sees it.
		const tag = randomBytes(4).toString('hex');
		await ana.session.context.setOffline(true);
		await paste(ana.page, 'draft.png', 'image/png', await photo());
		await ana.page.getByTestId('composer').fill(`Never mind ${tag}`);
		await ana.page.getByTestId('composer').press('Enter');
		const waiting = tagged(ana.page, tag);
		await waiting.waitFor({ timeout: UI_TIMEOUT });
		await waiting.getByTestId('cancel-upload').click();
		await expect.poll(() => tagged(ana.page, tag).count()).toBe(0);
		await ana.page.reload();
		await waitForApp(ana.page);
		await ana.page.getByTestId('composer').waitFor({ timeout: UI_TIMEOUT });
		expect(await tagged(ana.page, tag).count()).toBe(0);
		await ana.session.context.setOffline(false);

		// Sent: Ben sees it, and the image he saw is kept on his device, counted against the budget he can clear.
		const sent = `Here it is ${tag}`;
		await paste(ana.page, 'final.png', 'image/png', await photo());
		await ana.page.getByTestId('composer').fill(sent);
		await ana.page.getByTestId('composer').press('Enter');
		await ben.page.goto(`${ben.url}/rooms/${roomId}`);
		await waitForApp(ben.page);
		const image = tagged(ben.page, tag).getByTestId('attachment-image');
		await expect.poll(() => image.getAttribute('data-loaded'), { timeout: 4 * UI_TIMEOUT }).toBe('true');
		expect(await tagged(ben.page, tag).count()).toBe(1);
		await ben.page.goto(`${ben.url}/account`);
		await waitForApp(ben.page);
		const usage = ben.page.getByTestId('device-files-usage');
		await expect
			.poll(() => usage.textContent(), { timeout: UI_TIMEOUT })
			.toMatch(/^[1-9]\d*(\.\d)? (B|KB) of 200 MB used\.$/);
		await ben.page.getByTestId('clear-files').click();
		await expect.poll(() => usage.textContent()).toBe('0 B of 200 MB used.');
		expect(await ben.page.evaluate(async () => (await caches.keys()).includes('chat-files-v1'))).toBe(false);
	});
});

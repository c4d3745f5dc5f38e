import { rgbaToThumbHash } from 'thumbhash';
import { describe, expect, it } from 'vitest';
import {
	captionOf,
	isInlineImage,
	placeholderUrl,
	shownSize,
	typeLabel,
} from '../../src/lib/client/attachments.ts';
import { formatBytes } from '../../src/lib/client/format.ts';
import type { ChatAttachment } from '../../src/lib/sync/model.ts';

const file = (fields: Partial<ChatAttachment>): ChatAttachment => ({
	id: '0'.repeat(32),
	name: 'x',
	size: 1,
	mediaType: 'application/octet-stream',
	...fields,
});

describe('how attachments are shown', () => {
	it('fits images into the 320 px box at their own aspect ratio, never enlarging them', () => {
		expect(shownSize(file({ width: 1600, height: 900 }))).toEqual({ width: 320, height: 180 });
		expect(shownSize(file({ width: 900, height: 1600 }))).toEqual({ width: 180, height: 320 });
		expect(shownSize(file({ width: 100, height: 50 }))).toEqual({ width: 100, height: 50 });
		expect(shownSize(file({ width: 10_000, height: 1 }))).toEqual({ width: 320, height: 1 });
	});

	it('shows inline only the safe raster types with a known size; a local preview for any image', () => {
		const sized = { width: 10, height: 10 };
		expect(isInlineImage(file({ mediaType: 'image/png', ...sized }))).toBe(true);
		expect(isInlineImage(file({ mediaType: 'image/png' }))).toBe(false);
		expect(isInlineImage(file({ mediaType: 'image/svg+xml', ...sized }))).toBe(false);
		expect(isInlineImage(file({ mediaType: 'text/html', ...sized }))).toBe(false);
		expect(isInlineImage(file({ mediaType: 'image/heic', ...sized }))).toBe(false);
		expect(isInlineImage(file({ mediaType: 'image/heic', localUrl: 'blob:x', ...sized }))).toBe(true);
	});

	it('hides a caption that only names the files, keeps a real one', () => {
		const files = [file({ name: 'a.png' }), file({ name: 'b.pdf' })];
		expect(captionOf('a.png, b.pdf', files)).toBe('');
		expect(captionOf('Look at these', files)).toBe('Look at these');
		expect(captionOf('a.png', undefined)).toBe('a.png');
	});

	it('labels file types for their cards', () => {
		expect(typeLabel(file({ mediaType: 'application/pdf', name: 'x.pdf' }))).toBe('PDF');
		expect(typeLabel(file({ name: 'notes.docx' }))).toBe('DOCX');
		expect(typeLabel(file({ name: 'README' }))).toBe('File');
	});

	it('turns a ThumbHash into a picture, and refuses garbage without throwing', () => {
		const rgba = new Uint8Array(4 * 4 * 4).fill(200);
		const hash = btoa(String.fromCharCode(...rgbaToThumbHash(4, 4, rgba)));
		expect(placeholderUrl(hash)).toMatch(/^data:image\/png;base64,/);
		expect(placeholderUrl('!!!')).toBeNull();
		expect(placeholderUrl(undefined)).toBeNull();
	});

	it('formats sizes as file managers do', () => {
		expect(formatBytes(512)).toBe('512 B');
		expect(formatBytes(1536)).toBe('1.5 KB');
		expect(formatBytes(25 * 1024 * 1024)).toBe('25 MB');
		expect(formatBytes(1024 * 1024 * 1024)).toBe('1 GB');
	});
});

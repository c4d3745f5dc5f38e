import { thumbHashToDataURL } from 'thumbhash';
import { INLINE_IMAGE_TYPES } from '../protocol/events.ts';
import type { ChatAttachment } from './room-model.ts';

/*
 * How a message's files are shown (issue 19): the rules the components share.
 */

/** An image shown in the message (with its size known, so that it takes its place before it loads). */
export function isInlineImage(a: ChatAttachment): boolean {
	if (!a.width || !a.height) return false;
	// A file on its way is previewed by the browser itself, whatever image type it reads.
	return a.localUrl ? a.mediaType.startsWith('image/') : INLINE_IMAGE_TYPES.has(a.mediaType);
}

/** The largest box an image takes in a message; smaller images keep their size. */
export const IMAGE_BOX = { width: 320, height: 320 };

/** The size an image is shown at in a message: its own, scaled down to fit `IMAGE_BOX`. */
export function shownSize(a: ChatAttachment): { width: number; height: number } {
	const width = a.width ?? IMAGE_BOX.width;
	const height = a.height ?? IMAGE_BOX.height;
	const scale = Math.min(1, IMAGE_BOX.width / width, IMAGE_BOX.height / height);
	return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

const placeholders = new Map<string, string | null>();

/** The blurred picture a placeholder (ThumbHash, base64) stands for, as a data URL; null if it is unreadable. */
export function placeholderUrl(placeholder: string | undefined): string | null {
	if (!placeholder) return null;
	let url = placeholders.get(placeholder);
	if (url === undefined) {
		try {
			url = thumbHashToDataURL(Uint8Array.from(atob(placeholder), (c) => c.charCodeAt(0)));
		} catch {
			url = null;
		}
		placeholders.set(placeholder, url);
	}
	return url;
}

/** A short label of a file's type for its card: `PDF`, `ZIP`, or the name's extension. */
export function typeLabel(a: ChatAttachment): string {
	const known: Record<string, string> = {
		'application/pdf': 'PDF',
		'application/zip': 'ZIP',
		'text/plain': 'Text',
		'text/html': 'HTML',
		'image/svg+xml': 'SVG',
	};
	const label = known[a.mediaType];
	if (label) return label;
	const extension = /\.([A-Za-z0-9]{1,8})$/.exec(a.name)?.[1];
	return extension ? extension.toUpperCase() : 'File';
}

/** The caption of a message with files: empty when the text only names its files (sent without a caption). */
export function captionOf(content: string, attachments: ChatAttachment[] | undefined): string {
	if (!attachments?.length) return content;
	const names = attachments.map((a) => a.name).join(', ');
	return content === names || (content.endsWith('…') && names.startsWith(content.slice(0, -1)))
		? ''
		: content;
}

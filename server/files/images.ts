import fs from 'node:fs';
import { attachmentRef } from '#protocol/events.ts';
import type Sharp from 'sharp';
import { rgbaToThumbHash } from 'thumbhash';

let sharpModule: Promise<typeof Sharp> | undefined;
/**
 * sharp (and libvips, 22 MB of RSS), loaded by the first image a node receives rather than at start (issue 21).
 * Outside the callers' error handling: a sharp that cannot load fails the upload loudly, it does not make every
 * image "unreadable".
 */
function loadSharp(): Promise<typeof Sharp> {
	sharpModule ??= import('sharp').then((m) => m.default);
	return sharpModule;
}

/** Images the server looks into: their size in pixels, and metadata that can tell where a photo was taken. */
const READ = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/avif', 'image/gif']);
/** Of those, the ones written again without their metadata when they carry any (not GIF: it may be animated). */
const CLEAN = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/avif']);
/** A thumbnail fits in this square, in pixels: a message list's picture on a large screen, at twice its density. */
const THUMB_SIZE = 480;
/** ThumbHash encodes images of up to 100×100 pixels; more would be slower and no better. */
const PLACEHOLDER_SIZE = 100;

export interface ImageFacts {
	width: number;
	height: number;
	/** The metadata (EXIF, XMP, IPTC: a phone's GPS position, its serial number) was taken out. */
	stripped: boolean;
}

/**
 * An image sharp could not read or write again (a truncated or hostile file): it may still carry the metadata that
 * could not be taken out, so it is stored as bytes and only ever served as a download.
 */
export const UNREADABLE = 'unreadable';

/**
 * For an image upload: its size in pixels as shown, and when it carries EXIF, XMP or IPTC metadata, the same image
 * written again in place without it (turned as its EXIF orientation said, with its colour profile kept), so that
 * no one who receives a photo learns where it was taken. Anything but an image: null; an image sharp cannot read
 * or write again: `UNREADABLE`.
 */
export async function cleanImage(
	file: string,
	mediaType: string,
): Promise<ImageFacts | typeof UNREADABLE | null> {
	if (!READ.has(mediaType)) return null;
	const cleaned = `${file}.clean`;
	const sharp = await loadSharp();
	try {
		const meta = await sharp(file).metadata();
		const turned = (meta.orientation ?? 1) >= 5;
		const facts = {
			width: (turned ? meta.height : meta.width) ?? 0,
			height: (turned ? meta.width : meta.height) ?? 0,
		};
		if (!CLEAN.has(mediaType) || (!meta.exif && !meta.xmp && !meta.iptc))
			return { ...facts, stripped: false };
		const image = sharp(file).rotate().keepIccProfile();
		const output =
			mediaType === 'image/jpeg'
				? image.jpeg({ quality: 92, mozjpeg: true })
				: mediaType === 'image/png'
					? image.png()
					: mediaType === 'image/webp'
						? image.webp({ quality: 92 })
						: image.avif({ quality: 70 });
		await output.toFile(cleaned);
		await fs.promises.rename(cleaned, file);
		return { ...facts, stripped: true };
	} catch {
		// Its header may read well and the rest not (a photo cut short keeps its GPS position in its first bytes).
		await fs.promises.rm(cleaned, { force: true });
		return UNREADABLE;
	}
}

export interface ImagePreview {
	/** A WebP that fits in THUMB_SIZE × THUMB_SIZE (never enlarged), without metadata; an animation's first frame. */
	thumbnail: Buffer;
	/** The image's ThumbHash in base64: a blurred picture of it in at most 64 characters, shown before it loads. */
	placeholder: string;
}

/**
 * What a message list shows of a stored image: a thumbnail, so that no one downloads a 12-megapixel photo to see
 * it at 300 pixels, and a placeholder that the message itself carries, so that its place has its colours at once.
 * The placeholder is made from the thumbnail, so the image is decoded once. Throws when sharp cannot read it.
 */
export async function previewImage(file: string): Promise<ImagePreview> {
	const sharp = await loadSharp();
	const thumbnail = await sharp(file)
		.rotate()
		.resize(THUMB_SIZE, THUMB_SIZE, { fit: 'inside', withoutEnlargement: true })
		.webp({ quality: 80 })
		.toBuffer();
	return { thumbnail, placeholder: await placeholderOf(thumbnail) };
}

/** An image's ThumbHash, in base64 as a message's attachment carries it (`attachmentRef` says what it may be). */
async function placeholderOf(image: Buffer): Promise<string> {
	const sharp = await loadSharp();
	const { data, info } = await sharp(image)
		.resize(PLACEHOLDER_SIZE, PLACEHOLDER_SIZE, { fit: 'inside', withoutEnlargement: true })
		.ensureAlpha()
		.raw()
		.toBuffer({ resolveWithObject: true });
	const placeholder = Buffer.from(rgbaToThumbHash(info.width, info.height, data)).toString('base64');
	// A ThumbHash is at most 25 bytes (36 characters): this only guards against a change of the library.
	if (!attachmentRef.shape.placeholder.safeParse(placeholder).success)
		throw new Error(`the placeholder is not one a message may carry: ${placeholder}`);
	return placeholder;
}

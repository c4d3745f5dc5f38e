import fs from 'node:fs';
import sharp from 'sharp';

/** Images the server looks into: their size in pixels, and metadata that can tell where a photo was taken. */
const READ = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/avif', 'image/gif']);
/** Of those, the ones written again without their metadata when they carry any (not GIF: it may be animated). */
const CLEAN = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/avif']);

export interface ImageFacts {
	width: number;
	height: number;
	/** The metadata (EXIF, XMP, IPTC: a phone's GPS position, its serial number) was taken out. */
	stripped: boolean;
}

/**
 * For an image upload: its size in pixels as shown, and when it carries EXIF, XMP or IPTC metadata, the same image
 * written again in place without it (turned as its EXIF orientation said, with its colour profile kept), so that
 * no one who receives a photo learns where it was taken. Anything else, or an image sharp cannot read: null.
 */
export async function cleanImage(file: string, mediaType: string): Promise<ImageFacts | null> {
	if (!READ.has(mediaType)) return null;
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
		const cleaned = `${file}.clean`;
		await output.toFile(cleaned);
		await fs.promises.rename(cleaned, file);
		return { ...facts, stripped: true };
	} catch {
		// Not an image after all (a truncated or hostile file): served as bytes, never inline (files.ts).
		return null;
	}
}

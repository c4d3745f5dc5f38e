/**
 * Writes the PWA icons in static/ (a speech bubble on the brand colour, no text) as real PNG files, without an
 * image library: `node scripts/generate-icons.ts`. static/favicon.svg draws the same shapes; keep them in step.
 */
import { writeFileSync } from 'node:fs';
import { crc32, deflateSync } from 'node:zlib';

type Rgba = readonly [number, number, number, number];

const BRAND: Rgba = [0x43, 0x38, 0xca, 255];
const WHITE: Rgba = [255, 255, 255, 255];
const CLEAR: Rgba = [0, 0, 0, 0];
/** Samples per axis and pixel: 4×4 supersampling gives smooth edges. */
const SS = 4;

function inRoundedRect(
	x: number,
	y: number,
	x0: number,
	y0: number,
	x1: number,
	y1: number,
	r: number,
): boolean {
	if (x < x0 || x > x1 || y < y0 || y > y1) return false;
	const dx = Math.max(x0 + r - x, 0, x - (x1 - r));
	const dy = Math.max(y0 + r - y, 0, y - (y1 - r));
	return dx * dx + dy * dy <= r * r;
}

function inTriangle(x: number, y: number, [ax, ay, bx, by, cx, cy]: readonly number[]): boolean {
	const side = (px: number, py: number, qx: number, qy: number) =>
		(qx - px) * (y - py) - (qy - py) * (x - px);
	const d1 = side(ax!, ay!, bx!, by!);
	const d2 = side(bx!, by!, cx!, cy!);
	const d3 = side(cx!, cy!, ax!, ay!);
	return !((d1 < 0 || d2 < 0 || d3 < 0) && (d1 > 0 || d2 > 0 || d3 > 0));
}

/** Colour at a point of the unit square; `scale` shrinks the bubble about the centre (maskable safe zone). */
function colourAt(u: number, v: number, maskable: boolean, scale: number): Rgba {
	const inBackground = maskable || inRoundedRect(u, v, 0, 0, 1, 1, 0.22);
	if (!inBackground) return CLEAR;
	const x = 0.5 + (u - 0.5) / scale;
	const y = 0.5 + (v - 0.5) / scale;
	for (const cx of [0.36, 0.5, 0.64]) {
		if ((x - cx) ** 2 + (y - 0.46) ** 2 <= 0.045 ** 2) return BRAND;
	}
	if (inRoundedRect(x, y, 0.2, 0.24, 0.8, 0.68, 0.12)) return WHITE;
	if (inTriangle(x, y, [0.3, 0.6, 0.46, 0.6, 0.27, 0.8])) return WHITE;
	return BRAND;
}

function render(size: number, maskable: boolean): Buffer {
	const scale = maskable ? 0.8 : 1;
	const stride = size * 4 + 1;
	const raw = Buffer.alloc(stride * size);
	for (let py = 0; py < size; py++) {
		raw[py * stride] = 0; // filter type: none
		for (let px = 0; px < size; px++) {
			let r = 0;
			let g = 0;
			let b = 0;
			let a = 0;
			for (let sy = 0; sy < SS; sy++) {
				for (let sx = 0; sx < SS; sx++) {
					const [cr, cg, cb, ca] = colourAt(
						(px + (sx + 0.5) / SS) / size,
						(py + (sy + 0.5) / SS) / size,
						maskable,
						scale,
					);
					r += cr * ca;
					g += cg * ca;
					b += cb * ca;
					a += ca;
				}
			}
			const o = py * stride + 1 + px * 4;
			raw[o] = a ? Math.round(r / a) : 0;
			raw[o + 1] = a ? Math.round(g / a) : 0;
			raw[o + 2] = a ? Math.round(b / a) : 0;
			raw[o + 3] = Math.round(a / (SS * SS));
		}
	}
	const header = Buffer.alloc(13);
	header.writeUInt32BE(size, 0);
	header.writeUInt32BE(size, 4);
	header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, no interlace
	return Buffer.concat([
		Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
		chunk('IHDR', header),
		chunk('IDAT', deflateSync(raw, { level: 9 })),
		chunk('IEND', Buffer.alloc(0)),
	]);
}

function chunk(type: string, data: Buffer): Buffer {
	const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
	const out = Buffer.alloc(typed.length + 8);
	out.writeUInt32BE(data.length, 0);
	typed.copy(out, 4);
	out.writeUInt32BE(crc32(typed), typed.length + 4);
	return out;
}

const outDir = new URL('../static/', import.meta.url);
for (const [name, size, maskable] of [
	['icon-192.png', 192, false],
	['icon-512.png', 512, false],
	['icon-maskable-512.png', 512, true],
] as const) {
	writeFileSync(new URL(name, outDir), render(size, maskable));
}

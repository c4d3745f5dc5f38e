import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The image's runtime stage installs with `--ignore-scripts` (patch-package, which `postinstall` runs, is a dev
 * dependency), so a package that patches/ changes reaches it only by a copy from the build stage, where the
 * patches were applied. A patch without that copy would ship the unpatched package, and nothing else would fail.
 */
const root = path.resolve(import.meta.dirname, '../..');

/** `@scope+name+1.2.3.patch` → `@scope/name`; `name+1.2.3.patch` → `name` (patch-package's file names). */
function patchedPackage(file: string): string {
	const parts = file.replace(/\.patch$/, '').split('+');
	parts.pop();
	return parts.join('/');
}

describe('Dockerfile', () => {
	it('copies every patched package into the runtime image from the build stage', () => {
		const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
		const patches = fs.readdirSync(path.join(root, 'patches')).filter((f) => f.endsWith('.patch'));
		expect(patches.length).toBeGreaterThan(0);
		for (const pkg of patches.map(patchedPackage)) {
			expect(dockerfile, `no COPY of the patched ${pkg}`).toContain(
				`COPY --from=build /app/node_modules/${pkg} ./node_modules/${pkg}\n`,
			);
		}
		expect(dockerfile).toMatch(/npm ci --omit=dev --ignore-scripts/);
	});
});

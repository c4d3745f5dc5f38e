import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/process.ts';

/**
 * The import rules of eslint.config.js, run on made-up files: each must refuse what it is there to refuse and let
 * the ordinary imports through (a rule that matches nothing would pass every `npm run check`).
 */
const eslint = new ESLint({ cwd: repoRoot });

async function refusals(filePath: string, code: string): Promise<string[]> {
	const [result] = await eslint.lintText(code, { filePath });
	return (result?.messages ?? [])
		.filter((m) => m.ruleId === 'no-restricted-imports' || m.fatal)
		.map((m) => m.message);
}

const component = (imports: string) =>
	`<script lang="ts">\n\t${imports}\n\tvoid x;\n</script>\n\n<p>hi</p>\n`;

describe('import rules', () => {
	it('refuses IndexedDB, Yjs, providers and sockets in a component', async () => {
		for (const source of [
			'y-indexeddb',
			'idb',
			'yjs',
			'@hocuspocus/provider',
			'y-protocols/awareness',
			'$lib/client/store.ts',
		]) {
			const found = await refusals(
				`${repoRoot}/src/lib/components/Bad.svelte`,
				component(`import x from '${source}';`),
			);
			expect(found, source).toEqual([expect.stringContaining('components read state from src/lib/client/')]);
		}
	});

	it('lets a component import stores, the protocol, types of the IndexedDB layer and other components', async () => {
		const ok = [
			"import { rooms as x } from '$lib/client/rooms.svelte.ts';",
			"import { limits as x } from '$lib/protocol/limits.ts';",
			"import type { RemovalReason as x } from '$lib/client/store.ts';",
			"import x from './Avatar.svelte';",
		];
		for (const line of ok) {
			expect(await refusals(`${repoRoot}/src/lib/components/Good.svelte`, component(line)), line).toEqual([]);
		}
	});

	it('lets the stores themselves use IndexedDB and the provider', async () => {
		const code =
			"import { IndexeddbPersistence } from 'y-indexeddb';\nexport const x = IndexeddbPersistence;\n";
		expect(await refusals(`${repoRoot}/src/lib/client/fine.svelte.ts`, code)).toEqual([]);
	});

	it('keeps the sync core free of Svelte, the app stores and browser globals', async () => {
		const file = `${repoRoot}/src/lib/sync/bad.ts`;
		for (const source of [
			'svelte',
			'svelte/reactivity',
			'$app/navigation',
			'$lib/client/api.ts',
			'../client/api.ts',
			'./room.svelte.ts',
		]) {
			const found = await refusals(file, `import x from '${source}';\nexport const y = x;\n`);
			expect(found, source).toEqual([expect.stringContaining('src/lib/sync/ is framework-free')]);
		}
		const [result] = await eslint.lintText('export const y = window.location;\n', { filePath: file });
		expect(result?.messages.map((m) => m.ruleId)).toEqual(['no-restricted-globals']);
		const ok =
			"import * as Y from 'yjs';\nimport { limits } from '../protocol/limits.ts';\nexport const y = [Y, limits, setTimeout];\n";
		expect(await refusals(file, ok)).toEqual([]);
	});

	it("lets a component name the sync core's types, not import it", async () => {
		const file = `${repoRoot}/src/lib/components/Core.svelte`;
		expect(
			await refusals(file, component("import type { ChatMessage as x } from '$lib/sync/model.ts';")),
		).toEqual([]);
		expect(
			await refusals(file, component("import { RoomSync as x } from '$lib/sync/room-sync.ts';")),
		).toEqual([expect.stringContaining('components read state from src/lib/client/')]);
	});

	it('refuses server code reaching into src/ other than through #protocol', async () => {
		const bad = "import { x } from '../../src/lib/client/api.ts';\nexport const y = x;\n";
		expect(await refusals(`${repoRoot}/server/collab/bad.ts`, bad)).toEqual([
			expect.stringContaining('#protocol/'),
		]);
		const good = "import { limits } from '#protocol/limits.ts';\nexport const y = limits;\n";
		expect(await refusals(`${repoRoot}/server/collab/good.ts`, good)).toEqual([]);
	});

	it('refuses the browser importing server code', async () => {
		const bad = "import { x } from '../../../server/config.ts';\nexport const y = x;\n";
		expect(await refusals(`${repoRoot}/src/lib/client/bad.ts`, bad)).toEqual([
			expect.stringContaining('src/ runs in the browser'),
		]);
	});
});

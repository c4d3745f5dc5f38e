import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// `src/` is the browser app and must never import the Node server: a relative path that climbs out of `src/`
// into `server/` is refused. `$app/server` and other package specifiers do not match: only `../` chains do.
// (This also refuses `src/lib/server`, which a static SPA has no use for.)
const SERVER_IMPORT = String.raw`^(\.\./)+server(/|$)`;
const SERVER_IMPORT_MESSAGE =
	'src/ runs in the browser: share code through src/lib/protocol/, never import server/.';

export default defineConfig([
	globalIgnores([
		'build',
		'.builds/',
		'.svelte-kit/',
		'node_modules/',
		'.tools/',
		'data/',
		'coverage/',
		'bench/results/',
	]),
	js.configs.recommended,
	{
		files: ['**/*.ts', '**/*.mts', '**/*.cts'],
		extends: [tseslint.configs.recommended],
	},
	{
		files: ['server/**', 'scripts/**', 'tests/**', 'bench/**', '*.config.{js,ts}'],
		languageOptions: { globals: globals.node },
	},
	{
		// Tests read JSON answers of the API under test; typing every body would only restate the assertions.
		files: ['tests/**'],
		rules: { '@typescript-eslint/no-explicit-any': 'off' },
	},
	{
		files: ['src/**'],
		languageOptions: { globals: globals.browser },
		rules: {
			'no-restricted-imports': [
				'error',
				{
					patterns: [{ regex: SERVER_IMPORT, message: SERVER_IMPORT_MESSAGE }],
					paths: [
						{
							name: 'zod',
							message:
								"import { z } from src/lib/protocol/zod.ts: it turns off zod's eval under the app's CSP first.",
						},
					],
				},
			],
			'no-restricted-syntax': [
				'error',
				{
					selector: `ImportExpression[source.value=/${SERVER_IMPORT.replaceAll('/', '\\/')}/]`,
					message: SERVER_IMPORT_MESSAGE,
				},
			],
		},
	},
	{
		// The one module that may import zod itself (it configures it for the browser).
		files: ['src/lib/protocol/zod.ts'],
		rules: { 'no-restricted-imports': 'off' },
	},
]);

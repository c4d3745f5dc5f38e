import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';
import svelteParser from 'svelte-eslint-parser';
import tseslint from 'typescript-eslint';
import svelteConfig from './svelte.config.js';

// `src/` is the browser app and must never import the Node server: a relative path that climbs out of `src/`
// into `server/` is refused. `$app/server` and other package specifiers do not match: only `../` chains do.
// (This also refuses `src/lib/server`, which a static SPA has no use for.)
const SERVER_IMPORT = String.raw`^(\.\./)+server(/|$)`;
const SERVER_IMPORT_MESSAGE =
	'src/ runs in the browser: share code through src/lib/protocol/, never import server/.';
const ZOD_IMPORT = {
	name: 'zod',
	message: "import { z } from src/lib/protocol/zod.ts: it turns off zod's eval under the app's CSP first.",
};

// Components (.svelte) show state and call verbs of the stores in src/lib/client/; the document, IndexedDB and
// the socket stay behind those stores, so a component never holds a second copy of them.
const STORE_ONLY =
	'components read state from src/lib/client/ stores; the document, IndexedDB and sockets stay there.';
const COMPONENT_FORBIDDEN = [
	'y-indexeddb',
	'idb',
	'yjs',
	'y-protocols',
	'y-websocket',
	'@hocuspocus/provider',
	'lib0',
].map((name) => ({ name, message: STORE_ONLY }));
const COMPONENT_FORBIDDEN_PATTERNS = [
	{ regex: String.raw`^(y-protocols|lib0)/`, message: STORE_ONLY },
	// The sync core sits behind the stores too; its types (ChatMessage…) are fine to name.
	{ regex: String.raw`(^\$lib|/lib|^\.\.)/sync/`, message: STORE_ONLY, allowTypeImports: true },
	// The IndexedDB layer; its types are fine to name.
	{ regex: String.raw`(^\$lib/client|/client)/store\.ts$`, message: STORE_ONLY, allowTypeImports: true },
];

// src/lib/sync/ is the room sync core: plain TypeScript that runs in the browser and in Node (its tests, the
// integration tests' clients). No framework, no app store, no browser global: what it needs comes in through
// its ports (ports.ts).
const SYNC_CORE =
	'src/lib/sync/ is framework-free: no Svelte, no app stores; take what it needs through ports.ts.';
const SYNC_FORBIDDEN_PATTERNS = [
	{ regex: String.raw`^(svelte|\$app)(/|$)`, message: SYNC_CORE },
	{ regex: String.raw`(^|/)client/|\.svelte(\.ts)?$`, message: SYNC_CORE },
];

// server/ shares only the protocol with the browser, through the `#protocol/*` alias of package.json.
const SRC_FROM_SERVER = String.raw`^(\.\./)+src(/|$)`;
const SRC_FROM_SERVER_MESSAGE =
	'server/ imports the shared protocol as #protocol/<file>.ts, and nothing else of src/.';

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
	...svelte.configs.recommended,
	{
		files: ['**/*.svelte', '**/*.svelte.ts'],
		extends: [tseslint.configs.recommended],
		languageOptions: {
			// After the TypeScript rules, which would set their own parser.
			parser: svelteParser,
			parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.svelte'], svelteConfig },
		},
		rules: {
			// TypeScript checks names (svelte-check); the JavaScript rule misreads type-only names such as DOM types.
			'no-undef': 'off',
			// The app is served at the root (no `paths.base`), so an absolute path is the route itself.
			'svelte/no-navigation-without-resolve': 'off',
		},
	},
	{
		// The stores keep their bookkeeping (timers, acks, caches) in plain collections on purpose and publish
		// what the UI reads through $state: making those reactive would re-run effects for nothing.
		files: ['src/lib/client/**'],
		rules: { 'svelte/prefer-svelte-reactivity': 'off' },
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
		files: ['server/**'],
		rules: {
			'no-restricted-imports': [
				'error',
				{ patterns: [{ regex: SRC_FROM_SERVER, message: SRC_FROM_SERVER_MESSAGE }] },
			],
		},
	},
	{
		files: ['src/**'],
		languageOptions: { globals: globals.browser },
		rules: {
			'no-restricted-imports': [
				'error',
				{ patterns: [{ regex: SERVER_IMPORT, message: SERVER_IMPORT_MESSAGE }], paths: [ZOD_IMPORT] },
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
		files: ['src/**/*.svelte'],
		rules: {
			'no-restricted-imports': [
				'error',
				{
					patterns: [
						{ regex: SERVER_IMPORT, message: SERVER_IMPORT_MESSAGE },
						...COMPONENT_FORBIDDEN_PATTERNS,
					],
					paths: [ZOD_IMPORT, ...COMPONENT_FORBIDDEN],
				},
			],
		},
	},
	{
		files: ['src/lib/sync/**'],
		rules: {
			// (TypeScript checks names against the DOM library here, so the browser's globals are named one by one.)
			'no-restricted-globals': [
				'error',
				...['window', 'document', 'navigator', 'location', 'localStorage', 'sessionStorage', 'indexedDB'].map(
					(name) => ({ name, message: SYNC_CORE }),
				),
			],
			'no-restricted-imports': [
				'error',
				{
					patterns: [{ regex: SERVER_IMPORT, message: SERVER_IMPORT_MESSAGE }, ...SYNC_FORBIDDEN_PATTERNS],
					paths: [ZOD_IMPORT],
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

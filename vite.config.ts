import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { sveltekit } from '@sveltejs/kit/vite';
import { SvelteKitPWA } from '@vite-pwa/sveltekit';
import { defineConfig } from 'vite';

// In development the API runs as its own process (see scripts/dev.ts); in production one server serves both,
// so proxying these paths keeps the page same-origin in both cases.
const apiTarget = `http://127.0.0.1:${process.env.API_PORT ?? 3000}`;

// static/manifest.webmanifest is the one web app manifest (`manifest: false` below). @vite-pwa/sveltekit drops
// any precache entry named manifest.webmanifest, expecting to generate that file itself, so it is added back here
// with a revision of its own: without it an offline start cannot read the manifest.
const webManifest = 'manifest.webmanifest';
const webManifestRevision = createHash('md5')
	.update(readFileSync(new URL(`static/${webManifest}`, import.meta.url)))
	.digest('hex');

export default defineConfig(({ mode }) => ({
	// The browser tests' build (scripts/build.ts with `testHooks`) exposes the room documents to the page.
	define: { __TEST_HOOKS__: JSON.stringify(process.env.CHAT_TEST_HOOKS === '1') },
	plugins: [
		sveltekit(),
		SvelteKitPWA({
			// Without `spa`, the adapter's fallback page is not precached and every offline navigation fails.
			kit: { adapterFallback: 'index.html', spa: true },
			// The root layout registers the worker (src/lib/client/pwa.svelte.ts) and asks before reloading.
			registerType: 'prompt',
			// Absolute, so that a first visit to a deep link (/rooms/<id>) registers /sw.js for the whole app,
			// not /rooms/sw.js (SvelteKit builds with relative paths).
			base: '/',
			scope: '/',
			// Workbox follows Vite's mode, not NODE_ENV: a build run from a test (NODE_ENV=test) must still produce
			// the production worker, minified and without Workbox's debug logging.
			mode: mode === 'development' ? 'development' : 'production',
			injectRegister: false,
			manifest: false,
			workbox: {
				// The emoji data (src/lib/client/emoji.ts, about 440 KB) too: the picker works offline from the start.
				globPatterns: ['client/**/*.{js,css,html,ico,png,svg,webmanifest}', 'client/**/data.*.json'],
				additionalManifestEntries: [{ url: webManifest, revision: webManifestRevision }],
				// Every client route is the SPA shell; the precached fallback page answers them offline.
				navigateFallback: 'index.html',
				// Server endpoints are never the shell: they go to the network (and fail offline, as they must).
				navigateFallbackDenylist: [/^\/api\//, /^\/collab/, /^\/healthz/, /^\/readyz/, /^\/metrics/],
				// Web Push (static/push-sw.js): shows notifications and opens the room on click. It is precached
				// like any static file, so its revision is in sw.js and a changed push-sw.js makes a new worker.
				importScripts: ['push-sw.js'],
			},
		}),
	],
	server: {
		proxy: {
			'/api': apiTarget,
			'/healthz': apiTarget,
			'/readyz': apiTarget,
			'/metrics': apiTarget,
			'/collab': { target: apiTarget, ws: true },
		},
	},
}));

import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

const out = process.env.CLIENT_BUILD_DIR || 'build';

/** @type {import('@sveltejs/kit').Config} */
const config = {
	preprocess: vitePreprocess(),
	kit: {
		// A static SPA: the Node server serves it and falls back to index.html for every client route.
		// scripts/build.ts builds into a staging folder of its own (CLIENT_BUILD_DIR); a bare `vite build` writes build/.
		adapter: adapter({ pages: out, assets: out, fallback: 'index.html' }),
	},
};

export default config;

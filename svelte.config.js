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
		// The shell's own styles (a few KB) go inline: a stylesheet in <head> holds the first paint until the service
		// worker has answered for it, and the boot screen (src/app.html) is meant to paint at once.
		inlineStyleThreshold: 16_384,
	},
};

export default config;

import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
	preprocess: vitePreprocess(),
	kit: {
		// A static SPA: the Node server serves build/ and falls back to index.html for every client route.
		adapter: adapter({ pages: 'build', assets: 'build', fallback: 'index.html' }),
	},
};

export default config;

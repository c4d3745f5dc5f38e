import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

// In development the API runs as its own process (see scripts/dev.ts); in production one server serves both,
// so proxying these paths keeps the page same-origin in both cases.
const apiTarget = `http://127.0.0.1:${process.env.API_PORT ?? 3000}`;

export default defineConfig({
	plugins: [sveltekit()],
	server: {
		proxy: {
			'/api': apiTarget,
			'/healthz': apiTarget,
			'/readyz': apiTarget,
			'/metrics': apiTarget,
			'/collab': { target: apiTarget, ws: true },
		},
	},
});

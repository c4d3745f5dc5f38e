/// <reference types="vite-plugin-pwa/vanillajs" />
// Project-wide SvelteKit types (App.Error, App.PageState, …) are declared here once they exist.
// See https://svelte.dev/docs/kit/types#app.d.ts
declare global {
	namespace App {}
	/** True only in the build the browser tests use (scripts/build.ts, `testHooks`); false in every other. */
	const __TEST_HOOKS__: boolean;
}

export {};

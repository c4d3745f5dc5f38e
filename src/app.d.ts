/// <reference types="vite-plugin-pwa/vanillajs" />
// Project-wide SvelteKit types (App.Error, App.PageState, …) are declared here once they exist.
// See https://svelte.dev/docs/kit/types#app.d.ts
declare global {
	namespace App {}
}

export {};

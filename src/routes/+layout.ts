// A static SPA: no server-side rendering and no prerendering; adapter-static's fallback page boots every route.
export const ssr = false;
export const prerender = false;

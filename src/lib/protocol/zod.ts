import { z } from 'zod';

/**
 * zod for code that runs in the browser: every module under src/ imports `z` from here, so this runs before any
 * schema is built. zod compiles object parsers with `new Function` unless told not to; the server's
 * Content-Security-Policy allows no eval, and Chromium reports even the probe zod catches as a violation
 * (server/http/security-headers.ts). The server keeps the compiled parsers: it has no such policy to obey.
 */
if ('window' in globalThis) z.config({ jitless: true });

export { z };

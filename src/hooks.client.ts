import type { ClientInit, HandleClientError } from '@sveltejs/kit';
import { afterPaint } from '$lib/client/frames.ts';

/**
 * Before the app loads its root layout (and with it most of its code: evaluating it takes tens of milliseconds):
 * when the boot screen painted a picture of this page (src/app.html), let the browser show it first. Without
 * this wait the evaluation often lands before the first frame and holds the picture back by as much; with it, the
 * app's own start is later by a frame at most (`afterPaint` gives up after 50 ms, and a page without a picture
 * does not wait).
 */
export const init: ClientInit = async () => {
	if (document.getElementById('boot-screen')) await afterPaint();
};

/**
 * An unexpected error while loading a page: logged for whoever debugs it, shown by src/routes/+error.svelte. An
 * address that matches no page is not an error of the app (the page says so), so it is not logged.
 */
export const handleError: HandleClientError = ({ error, status }) => {
	if (status !== 404) console.error(error);
	return { message: status === 404 ? 'Not found' : 'The page could not be shown.' };
};

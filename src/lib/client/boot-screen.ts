import { whenIdle } from './frames.ts';

/**
 * The boot screen: what the user saw last on a page (the room list, or a room's newest messages), kept on the
 * device when the page goes away and painted by src/app.html's inline script before the app's modules have even
 * loaded, so a start shows the screen at once. It is a picture: a closed shadow root that takes no input
 * (`inert`, `pointer-events: none`) and that tests and assistive technology do not see, over the app, which
 * takes it away (`revealApp`) as soon as it has painted the same page itself.
 *
 * Kept in localStorage (the inline script can read nothing slower): the last few pages' markup, with the app's
 * styles as text (a few KB; no fetch stands between the start and the paint), never a sign-in page, deleted with
 * the account's data at sign-out.
 */
/**
 * Each page under `chat-boot-screen:<userId>:<path>`; under `chat-boot-screen` the user they belong to and their
 * order (a start reads these two keys only, and paints only the pages of the user who kept the last one: after
 * another account signed in on this browser, it paints nothing of the previous one). The inline script of
 * src/app.html reads the keys and the format: change both together.
 */
export const BOOT_SCREEN_KEY = 'chat-boot-screen';
const pageKey = (userId: string, path: string) => `${BOOT_SCREEN_KEY}:${userId}:${path}`;
const FORMAT = 1;
/** Pages kept: the room list and the last few rooms. */
const MAX_PAGES = 6;
/** The markup kept per page, at most: a page over it is not kept (its start shows the app loading). */
const MAX_HTML = 200_000;
/** Only these pages are painted from the device: the list and a room. */
const KEPT_PATH = /^\/(rooms\/[0-9a-f-]{36})?$/;
/** A page is kept this long after it last changed (at the browser's next idle moment). */
const KEEP_AFTER_MS = 1_000;
/** The app takes the picture away by then at the latest, whatever it shows. */
const REVEAL_AT_LATEST_MS = 3_000;

interface SavedPage {
	v: typeof FORMAT;
	html: string;
	/** The app's styles, as text: painted with the picture, without a fetch. */
	css: string;
}

/** Whose pages are kept, and their paths, most recent last. */
function index(): { user: string; order: string[] } | null {
	try {
		const saved = JSON.parse(localStorage.getItem(BOOT_SCREEN_KEY) ?? 'null') as {
			v?: number;
			user?: unknown;
			order?: unknown;
		};
		if (saved?.v === FORMAT && typeof saved.user === 'string' && Array.isArray(saved.order))
			return { user: saved.user, order: saved.order.filter((p): p is string => typeof p === 'string') };
	} catch {
		// Unreadable: start over.
	}
	return null;
}

/** Pages with a picture: the list and a room. */
export const isPictured = (path: string): boolean => KEPT_PATH.test(path);

/**
 * The attributes a picture keeps: what styles and lays it out, never a handler or a test hook. A `blob:` URL (an
 * image shown from the device) dies with its page: the next start would ask for it in vain, so it is left out too
 * (the box keeps its size).
 */
function keepAttribute(name: string, value: string): boolean {
	return (
		!name.startsWith('on') &&
		name !== 'id' &&
		name !== 'data-testid' &&
		name !== 'autofocus' &&
		!value.startsWith('blob:')
	);
}

/** The app's markup of this page, as a picture to paint at the next start. */
function picture(root: HTMLElement): SavedPage | null {
	// Where each scrolled list stands, from the bottom (the newest messages), for the inline script to restore;
	// and which messages lie more than a screen above what is in view: left out (the start need not lay them out).
	const scrolled = [...root.querySelectorAll<HTMLElement>('.scroller')];
	const dropped: HTMLElement[] = [];
	for (const el of scrolled) {
		el.dataset.bootScroll = String(Math.max(0, el.scrollHeight - el.clientHeight - el.scrollTop));
		const top = el.getBoundingClientRect().top - el.clientHeight;
		for (const message of el.querySelectorAll<HTMLElement>('[data-client-msg-id]'))
			if (message.getBoundingClientRect().bottom < top) dropped.push(message);
	}
	for (const el of dropped) el.dataset.bootDrop = '';
	const clone = root.cloneNode(true) as HTMLElement;
	for (const el of scrolled) delete el.dataset.bootScroll;
	for (const el of dropped) delete el.dataset.bootDrop;
	for (const el of clone.querySelectorAll('[data-boot-drop]')) el.remove();
	for (const el of clone.querySelectorAll('script, style, dialog, template, iframe, object, embed'))
		el.remove();
	// What the picture shows, named on its host (the shadow root is closed): messages and rooms.
	const ids: string[] = [];
	const rooms: string[] = [];
	for (const el of clone.querySelectorAll('*')) {
		for (const { name, value } of [...el.attributes])
			if (!keepAttribute(name, value)) el.removeAttribute(name);
		if (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement) el.removeAttribute('value');
		const id = el.getAttribute('data-client-msg-id');
		if (id) ids.push(id);
		const room = el.getAttribute('data-room-id');
		if (room) rooms.push(room);
	}
	const html = clone.innerHTML;
	if (html.length > MAX_HTML) return null;
	return {
		v: FORMAT,
		html: `<div data-boot-ids="${ids.join(' ')}" data-boot-rooms="${rooms.join(' ')}">${html}</div>`,
		css: styles(),
	};
}

let cachedStyles: { sheets: CSSStyleSheet[]; rules: number; text: string } | null = null;

/**
 * The app's styles as text. Serializing every rule costs milliseconds, and a page is often kept as it is left
 * (`pagehide`, on the way to the next page's start): the text is made again only when the sheets changed.
 */
function styles(): string {
	const sheets = [...document.styleSheets].filter(
		(sheet) => !sheet.href || new URL(sheet.href).origin === location.origin,
	);
	const rules = sheets.reduce((sum, sheet) => sum + sheet.cssRules.length, 0);
	const same =
		cachedStyles?.rules === rules &&
		cachedStyles.sheets.length === sheets.length &&
		cachedStyles.sheets.every((sheet, i) => sheet === sheets[i]);
	if (!same || !cachedStyles) {
		const text = sheets.map((sheet) => [...sheet.cssRules].map((rule) => rule.cssText).join('\n')).join('\n');
		cachedStyles = { sheets, rules, text };
	}
	return cachedStyles.text;
}

/** Keeps what this page shows now for `userId`, for the next start (the page changed, is hidden or left). */
export function keepScreen(userId: string): void {
	const path = location.pathname;
	const root = document.getElementById('app');
	// Still the picture from the start: the app has not shown this page itself, there is nothing newer.
	if (!root || !isPictured(path) || document.getElementById('boot-screen')) return;
	try {
		const page = picture(root);
		const kept = index();
		// Another account's pages (it signed in here without signing out first) go.
		if (kept && kept.user !== userId) forgetScreens();
		const paths = (kept?.user === userId ? kept.order : []).filter((p) => p !== path);
		if (page) {
			localStorage.setItem(pageKey(userId, path), JSON.stringify(page));
			paths.push(path);
		} else localStorage.removeItem(pageKey(userId, path));
		for (const old of paths.splice(0, Math.max(0, paths.length - MAX_PAGES)))
			localStorage.removeItem(pageKey(userId, old));
		localStorage.setItem(BOOT_SCREEN_KEY, JSON.stringify({ v: FORMAT, user: userId, order: paths }));
	} catch (error) {
		// Full or unavailable storage: the next start shows the app's own loading instead.
		console.warn('cannot keep the boot screen', error);
	}
}

/** The app shows this page itself now: the picture goes (after the app's paint, so nothing blinks). */
export function revealApp(): void {
	const screen = document.getElementById('boot-screen');
	if (screen) requestAnimationFrame(() => screen.remove());
}

/** Deletes every kept page (sign-out: the account's data leaves the device). */
export function forgetScreens(): void {
	try {
		for (const key of Object.keys(localStorage))
			if (key === BOOT_SCREEN_KEY || key.startsWith(`${BOOT_SCREEN_KEY}:`)) localStorage.removeItem(key);
	} catch {
		// Unavailable storage kept nothing.
	}
	document.getElementById('boot-screen')?.remove();
}

/**
 * Keeps the page for the signed-in user (`userId()`, null when signed out): a moment after it last changed (or
 * scrolled), when the browser is idle, so that leaving is free; and when it is hidden or left with a change not
 * kept yet. Makes sure the picture never outstays the app's start.
 */
export function followScreens(userId: () => string | null): () => void {
	let changed = false;
	let timer: ReturnType<typeof setTimeout> | undefined;
	const keep = () => {
		clearTimeout(timer);
		timer = undefined;
		const user = userId();
		if (!changed || !user) return;
		changed = false;
		keepScreen(user);
	};
	const change = () => {
		changed = true;
		timer ??= setTimeout(() => whenIdle().then(keep), KEEP_AFTER_MS);
	};
	const onHidden = () => {
		if (document.visibilityState === 'hidden') keep();
	};
	const observer = new MutationObserver(change);
	const root = document.getElementById('app');
	if (root) observer.observe(root, { subtree: true, childList: true, characterData: true, attributes: true });
	document.addEventListener('scroll', change, { capture: true, passive: true });
	document.addEventListener('visibilitychange', onHidden);
	window.addEventListener('pagehide', keep);
	const reveal = setTimeout(revealApp, REVEAL_AT_LATEST_MS);
	return () => {
		observer.disconnect();
		document.removeEventListener('scroll', change, { capture: true });
		document.removeEventListener('visibilitychange', onHidden);
		window.removeEventListener('pagehide', keep);
		clearTimeout(timer);
		clearTimeout(reveal);
	};
}

/* global self, URL */
// Web Push handling for the app's service worker. Workbox's generated /sw.js loads this file with
// importScripts (vite.config.ts, `workbox.importScripts`), so it runs in the worker's global scope: plain
// JavaScript, no imports, nothing from the page. The payload is `pushPayload` in
// src/lib/protocol/user-channel.ts (docs/protocol.md, "Web Push"); it is checked here by hand, because zod
// cannot be imported into this file.

/** The payload as documented, or null. A push must still show something (userVisibleOnly), so null is shown generically. */
function readPushPayload(data) {
	let value;
	try {
		value = data ? data.json() : null;
	} catch {
		return null;
	}
	const isString = (v) => typeof v === 'string';
	if (
		!value ||
		typeof value !== 'object' ||
		value.type !== 'message' ||
		!isString(value.roomId) ||
		!(value.roomName === null || isString(value.roomName)) ||
		typeof value.isGroup !== 'boolean' ||
		!isString(value.senderName) ||
		typeof value.mention !== 'boolean' ||
		!isString(value.url) ||
		!(value.text === undefined || isString(value.text))
	) {
		return null;
	}
	return value;
}

/** A same-origin URL of the app for `url`, or the app's start page for anything else. */
function appUrl(url) {
	try {
		const resolved = new URL(url, self.registration.scope);
		if (resolved.origin === self.location.origin) return resolved.href;
	} catch {
		// Not a URL at all: fall through to the start page.
	}
	return new URL('/', self.registration.scope).href;
}

const GENERIC_TAG = 'chat-new-message';

/** Title, options: "Ana in general" / "Ana"; the text when the subscription has previews on. */
function notificationFor(payload) {
	if (!payload) {
		// One for every push it cannot read (a newer server's): they replace each other instead of piling up.
		return [
			'New message',
			{ body: 'Open the app to read it.', tag: GENERIC_TAG, renotify: true, data: { url: appUrl('/') } },
		];
	}
	const title =
		payload.isGroup && payload.roomName ? `${payload.senderName} in ${payload.roomName}` : payload.senderName;
	const fallback = payload.mention ? 'mentioned you' : 'sent you a message';
	return [
		title,
		{
			body: payload.text !== undefined && payload.text !== '' ? payload.text : fallback,
			// One notification per room: a newer message replaces the older one instead of piling up.
			tag: payload.roomId,
			renotify: true,
			icon: '/icon-192.png',
			badge: '/icon-192.png',
			timestamp: Date.now(),
			data: { url: appUrl(payload.url), roomId: payload.roomId, clientMsgId: payload.clientMsgId },
		},
	];
}

self.addEventListener('push', (event) => {
	const [title, options] = notificationFor(readPushPayload(event.data));
	event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener('notificationclick', (event) => {
	event.notification.close();
	const url = appUrl(event.notification.data && event.notification.data.url);
	event.waitUntil(
		(async () => {
			const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
			const open = windows.find((client) => new URL(client.url).origin === self.location.origin);
			if (!open) {
				await self.clients.openWindow(url);
				return;
			}
			// Focusing needs the click's user activation; a click replayed by a test has none, and then the
			// window is still taken to the room below.
			await open.focus().catch(() => undefined);
			if (open.url === url) return;
			// navigate() works only on windows this worker controls; another one gets a window of its own.
			try {
				await open.navigate(url);
			} catch {
				await self.clients.openWindow(url);
			}
		})(),
	);
});

import { pushApi } from './api.ts';

/**
 * Web Push for this browser (docs/protocol.md, "Web Push"): while none of the user's devices is connected, the
 * server pushes mentions and 1:1 messages here, and the service worker (static/push-sw.js) shows them. The
 * settings page calls these; nothing here asks for permission on its own.
 */

/** Why push cannot be turned on: no browser support, or the user (or the browser) refused notifications. */
export class PushUnavailableError extends Error {
	readonly reason: 'unsupported' | 'denied';
	constructor(reason: PushUnavailableError['reason'], message: string) {
		super(message);
		this.name = 'PushUnavailableError';
		this.reason = reason;
	}
}

/** Whether this browser can receive Web Push at all (service workers, PushManager, notifications). */
export function pushSupported(): boolean {
	return (
		typeof window !== 'undefined' &&
		'serviceWorker' in navigator &&
		'PushManager' in window &&
		'Notification' in window
	);
}

/** This browser's state for a settings toggle: `enabled` means it holds a push subscription. */
export async function pushStatus(): Promise<'unsupported' | 'denied' | 'enabled' | 'disabled'> {
	if (!pushSupported()) return 'unsupported';
	if (Notification.permission === 'denied') return 'denied';
	const registration = await navigator.serviceWorker.getRegistration();
	const subscription = await registration?.pushManager.getSubscription();
	return subscription && Notification.permission === 'granted' ? 'enabled' : 'disabled';
}

/**
 * Turns push on for this browser: asks for notification permission (call it from a click or key press:
 * browsers ignore or block permission prompts without a user gesture), subscribes with the server's VAPID key
 * and registers the subscription. `previews` lets notifications show the message text; without it they say
 * only who wrote where. Calling it again updates `previews`. Throws `PushUnavailableError` when push cannot be
 * used, `ApiError` when the server refuses or cannot be reached.
 */
export async function enablePush({ previews }: { previews: boolean }): Promise<void> {
	if (!pushSupported()) {
		throw new PushUnavailableError('unsupported', 'This browser cannot receive push notifications.');
	}
	const permission = await Notification.requestPermission();
	if (permission !== 'granted') {
		throw new PushUnavailableError('denied', 'Notifications are blocked for this site in the browser.');
	}
	const [registration, publicKey] = await Promise.all([navigator.serviceWorker.ready, pushApi.key()]);
	const applicationServerKey = fromBase64Url(publicKey);
	let subscription = await registration.pushManager.getSubscription();
	// A subscription made for another server key (keys rotated, another deployment) would be refused by the
	// push service for ours: replace it.
	if (subscription && !sameKey(subscription.options.applicationServerKey, applicationServerKey)) {
		await subscription.unsubscribe();
		subscription = null;
	}
	subscription ??= await registration.pushManager.subscribe({
		userVisibleOnly: true,
		applicationServerKey,
	});
	const { endpoint, keys } = subscription.toJSON();
	if (!endpoint || !keys?.p256dh || !keys.auth) {
		throw new PushUnavailableError('unsupported', 'The browser returned an incomplete push subscription.');
	}
	await pushApi.subscribe({ endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth }, previews });
}

/**
 * Turns push off for this browser: the subscription is dropped here first, then on the server. When the server
 * cannot be told (offline), the endpoint is dead anyway: the push service answers 410 to the next push and the
 * server removes it then.
 */
export async function disablePush(): Promise<void> {
	if (!pushSupported()) return;
	const registration = await navigator.serviceWorker.getRegistration();
	const subscription = await registration?.pushManager.getSubscription();
	if (!subscription) return;
	const { endpoint } = subscription;
	await subscription.unsubscribe();
	try {
		await pushApi.unsubscribe(endpoint);
	} catch {
		// Offline or signed out: see above, the server forgets the endpoint at its next push.
	}
}

function fromBase64Url(value: string): Uint8Array<ArrayBuffer> {
	const base64 = value.replace(/-/g, '+').replace(/_/g, '/');
	const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
	const bytes = new Uint8Array(binary.length);
	for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
	return bytes;
}

function sameKey(current: ArrayBuffer | null, wanted: Uint8Array): boolean {
	if (!current) return false;
	const bytes = new Uint8Array(current);
	return bytes.length === wanted.length && bytes.every((b, i) => b === wanted[i]);
}

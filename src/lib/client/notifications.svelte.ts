import { goto } from '$app/navigation';
import type { NotifyLevel } from '../protocol/user-channel.ts';
import { disablePush, enablePush, pushStatus, pushSupported } from './push.ts';
import type { NotifyMessage } from './user-channel.svelte.ts';
import { plainText } from './rich-text.ts';

/** Device settings (not the account's): each browser decides whether it beeps. */
const SOUND_KEY = 'chat-notify-sound';
const PREVIEWS_KEY = 'chat-push-previews';
/** A notification's text is cut after this many characters. */
const BODY_MAX = 140;
/** Messages already announced, so a repeated `notify` (a reconnect, a second node) is not announced twice. */
const SEEN_MAX = 500;

export type DesktopPermission = NotificationPermission | 'unsupported';
/** Web Push on this browser: `busy` while it is being turned on or off. */
export type PushState = Awaited<ReturnType<typeof pushStatus>> | 'busy';

/** Where the user is, for deciding whether a message is already in view. */
export interface NotifyContext {
	/** The signed-in user: their own messages are never announced. */
	selfId: string;
	/** The room whose page is open in this tab, if any. */
	viewingRoomId: string | null;
	/** The room's level as this device knows it (the server applied it already; a change may be in flight). */
	level: NotifyLevel | undefined;
}

/** "Ana in Design" for a group, "Ana" for a 1:1 room. */
export function notificationTitle(message: NotifyMessage): string {
	return message.isGroup && message.roomName
		? `${message.senderName} in ${message.roomName}`
		: message.senderName;
}

/** A message as one line of text without its Markdown, cut to what a notification shows. */
export function notificationBody(content: string): string {
	const text = plainText(content);
	return text.length > BODY_MAX ? `${text.slice(0, BODY_MAX - 1)}…` : text;
}

function readFlag(key: string, fallback: boolean): boolean {
	try {
		const value = localStorage.getItem(key);
		return value === null ? fallback : value === '1';
	} catch {
		// Storage blocked (some private modes): the default holds for this visit.
		return fallback;
	}
}

function writeFlag(key: string, value: boolean): void {
	try {
		localStorage.setItem(key, value ? '1' : '0');
	} catch {
		// Storage blocked: the setting holds until the tab closes.
	}
}

/**
 * What this device does when the user channel says a message deserves attention: an OS notification when the
 * room is not in view and the user allowed them, and a short sound (made with the Web Audio API, no file) when
 * the sound is on. Permission is asked only from the user's click in the settings, never on load.
 */
class Notifications {
	permission = $state<DesktopPermission>('default');
	/** Play a sound for a message that is not in view (default on). */
	sound = $state(true);
	/** Push notifications may carry the message text (default off: who wrote where, never what). */
	previews = $state(false);
	push = $state<PushState>('unsupported');
	/** The last push problem, in plain words, for the settings to show. */
	pushError = $state<string | null>(null);

	readonly #seen = new Set<string>();
	#audio: AudioContext | null = null;
	#started = false;

	/** Reads the device settings and the current permission; unlocks audio on the first gesture. Idempotent. */
	start(): void {
		if (this.#started || typeof window === 'undefined') return;
		this.#started = true;
		this.sound = readFlag(SOUND_KEY, true);
		this.previews = readFlag(PREVIEWS_KEY, false);
		this.permission = 'Notification' in window ? Notification.permission : 'unsupported';
		void this.refreshPush();
		// The permission can change in the browser's own settings while the app runs.
		void navigator.permissions
			?.query({ name: 'notifications' })
			.then((status) => {
				status.onchange = () => {
					if ('Notification' in window) this.permission = Notification.permission;
				};
			})
			.catch(() => {
				// Not queryable here: the value read above stays, and a click in the settings refreshes it.
			});
		// Browsers start audio only after a user gesture; creating the context then avoids a refused start later.
		const unlock = () => {
			this.#unlockAudio();
			window.removeEventListener('pointerdown', unlock);
			window.removeEventListener('keydown', unlock);
		};
		window.addEventListener('pointerdown', unlock);
		window.addEventListener('keydown', unlock);
	}

	/** Asks for permission to show desktop notifications. Call it only from the user's click. */
	async requestPermission(): Promise<DesktopPermission> {
		if (!('Notification' in window)) return (this.permission = 'unsupported');
		this.#unlockAudio();
		this.permission = await Notification.requestPermission();
		return this.permission;
	}

	/** Reads whether this browser holds a push subscription. */
	async refreshPush(): Promise<void> {
		if (!pushSupported()) {
			this.push = 'unsupported';
			return;
		}
		try {
			this.push = await pushStatus();
		} catch (error) {
			console.warn('cannot read the push subscription', error);
			this.push = 'disabled';
		}
	}

	/** Turns push on or off for this browser. Call it only from the user's click (it may ask for permission). */
	async setPush(on: boolean): Promise<void> {
		this.pushError = null;
		this.push = 'busy';
		try {
			if (on) await enablePush({ previews: this.previews });
			else await disablePush();
		} catch (error) {
			this.pushError = error instanceof Error ? error.message : 'Push notifications could not be changed.';
		}
		if ('Notification' in window) this.permission = Notification.permission;
		await this.refreshPush();
	}

	setSound(on: boolean): void {
		this.sound = on;
		writeFlag(SOUND_KEY, on);
		if (on) {
			this.#unlockAudio();
			this.#beep();
		}
	}

	/** Whether push notifications carry the message text; an existing subscription is updated. */
	async setPreviews(on: boolean): Promise<void> {
		this.previews = on;
		writeFlag(PREVIEWS_KEY, on);
		if (this.push === 'enabled') await this.setPush(true);
	}

	/**
	 * A `notify` from the user channel: announced once, unless it is the user's own message or its room is in
	 * view (the tab visible and on that room's page).
	 */
	receive(message: NotifyMessage, context: NotifyContext): void {
		if (message.senderId === context.selfId) return;
		if (context.level === 'none') return;
		if (context.level === 'mentions' && message.isGroup && !message.mention) return;
		const inView = document.visibilityState === 'visible' && context.viewingRoomId === message.roomId;
		if (inView || this.#seen.has(message.clientMsgId)) return;
		this.#seen.add(message.clientMsgId);
		if (this.#seen.size > SEEN_MAX) this.#seen.delete(this.#seen.values().next().value as string);
		if (this.sound) this.#beep();
		if (this.permission !== 'granted' && 'Notification' in window) this.permission = Notification.permission;
		if (this.permission !== 'granted') return;
		// The tag is the message id: a push notification of the same message (service worker) replaces this one.
		const notification = new Notification(notificationTitle(message), {
			body: notificationBody(message.content),
			tag: message.clientMsgId,
			icon: '/favicon.svg',
		});
		notification.onclick = () => {
			window.focus();
			notification.close();
			void goto(`/rooms/${message.roomId}`);
		};
	}

	#unlockAudio(): void {
		if (typeof AudioContext === 'undefined') return;
		this.#audio ??= new AudioContext();
		if (this.#audio.state === 'suspended') void this.#audio.resume().catch(() => undefined);
	}

	/** Two short tones, falling: about a quarter of a second. */
	#beep(): void {
		const audio = this.#audio;
		// No gesture yet (the context would refuse to start): silence rather than a console warning.
		if (!audio || audio.state !== 'running') return;
		const t = audio.currentTime;
		const oscillator = audio.createOscillator();
		const gain = audio.createGain();
		oscillator.type = 'sine';
		oscillator.frequency.setValueAtTime(880, t);
		oscillator.frequency.setValueAtTime(660, t + 0.1);
		gain.gain.setValueAtTime(0.0001, t);
		gain.gain.exponentialRampToValueAtTime(0.12, t + 0.015);
		gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.25);
		oscillator.connect(gain).connect(audio.destination);
		oscillator.start(t);
		oscillator.stop(t + 0.26);
	}
}

/** The one notification policy of this tab. */
export const notifications = new Notifications();

import { registerSW } from 'virtual:pwa-register';

/** How often an open tab asks the server for a new version (a chat tab stays open for days). */
const UPDATE_CHECK_INTERVAL_MS = 60 * 60 * 1000;
/** How long a reload for a newer version waits for the new worker to install. */
const NEW_WORKER_WAIT_MS = 10_000;

/**
 * The service worker's state for the UI. The worker precaches the app shell, so the app starts offline; a new
 * deploy installs a new worker that waits until the user accepts it (`registerType: 'prompt'` in vite.config.ts),
 * because taking over silently would reload the page under someone typing a message.
 */
class Pwa {
	/** A new version is installed and waiting: `applyUpdate()` switches to it and reloads the page. */
	updateAvailable = $state(false);

	#updateServiceWorker: ((reloadPage?: boolean) => Promise<void>) | undefined;
	#registration: ServiceWorkerRegistration | undefined;

	/** Registers the service worker once; later calls do nothing. See `registerPwa`. */
	register(): void {
		// Prerendering, tests in Node and browsers without service workers (some private modes) run as a plain SPA.
		if (this.#updateServiceWorker || typeof window === 'undefined' || !('serviceWorker' in navigator)) return;
		this.#updateServiceWorker = registerSW({
			// The layout registers from onMount, usually after `load`; waiting for it would gain nothing.
			immediate: true,
			onNeedRefresh: () => {
				this.updateAvailable = true;
			},
			onRegisteredSW: (_url, registration) => {
				this.#registration = registration;
				if (!registration) return;
				setInterval(() => void this.checkForUpdate(), UPDATE_CHECK_INTERVAL_MS);
				document.addEventListener('visibilitychange', () => {
					if (document.visibilityState === 'visible') void this.checkForUpdate();
				});
			},
			onRegisterError: (error: unknown) => {
				// The app works without a worker, only not offline: report it and carry on.
				console.warn('service worker registration failed', error);
			},
		});
	}

	/** Asks the server whether a new version was deployed; a new one shows up as `updateAvailable`. */
	async checkForUpdate(): Promise<void> {
		const registration = this.#registration;
		// Offline the check can only fail; an installing worker is a check already under way.
		if (!registration || registration.installing || !navigator.onLine) return;
		try {
			await registration.update();
		} catch {
			// A failed check (server restarting, flaky network) changes nothing: the next one retries.
		}
	}

	/**
	 * The server speaks a newer protocol than this bundle: load the new one. A tab no service worker controls
	 * loads it from the network with a plain reload. A controlled tab would get the old precached shell that way:
	 * it asks for the new worker first and switches to it, or reloads plainly when none comes (nothing new to get).
	 */
	async reloadForNewVersion(): Promise<void> {
		if (!navigator.serviceWorker?.controller || !this.#updateServiceWorker) {
			location.reload();
			return;
		}
		await this.checkForUpdate();
		const deadline = Date.now() + NEW_WORKER_WAIT_MS;
		while (!this.updateAvailable && this.#registration?.installing && Date.now() < deadline) {
			await new Promise((resolve) => setTimeout(resolve, 200));
		}
		if (this.updateAvailable || this.#registration?.waiting) await this.applyUpdate();
		else location.reload();
	}

	/** Activates the waiting version; the page reloads once it controls the page. */
	async applyUpdate(): Promise<void> {
		await this.#updateServiceWorker?.(true);
	}
}

/** The one service worker state of the app. */
export const pwa = new Pwa();

/** Registers the service worker. Call it from the root layout's `onMount`; it is safe to call more than once. */
export function registerPwa(): void {
	pwa.register();
}

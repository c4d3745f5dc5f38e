/**
 * One Tab stop for a list of items (WAI-ARIA's roving tabindex): the list holds a single focusable item, the one
 * last visited (the newest at first), and the arrow keys, Home and End move between items. The controls inside an
 * item (links, buttons) are in the Tab order only while the focus is in that item, so a busy room is a couple of
 * Tab stops, not hundreds; Escape from a control goes back to its item.
 *
 * A Svelte action: `<div use:roving={'article'}>`. Items come and go (new messages, history paged in): a
 * MutationObserver keeps the tab stops right.
 */

const CONTROLS = 'a[href], button, input, select, textarea, [tabindex]:not([data-roving-item])';

export function roving(list: HTMLElement, itemSelector: string) {
	let current: HTMLElement | null = null;
	/** The user has been in the list: until then the stop follows the newest item as items arrive. */
	let visited = false;
	const items = () => [...list.querySelectorAll<HTMLElement>(itemSelector)];

	function apply() {
		const all = items();
		// A room renders its messages in more than one pass (the device's copy, then the server's): the stop
		// stayed on whatever was newest at the first pass.
		if (!visited || !current || !current.isConnected) current = all.at(-1) ?? null;
		setTabStops(all, current);
	}

	let queued = false;
	const schedule = () => {
		if (queued) return;
		queued = true;
		queueMicrotask(() => {
			queued = false;
			apply();
		});
	};

	function move(to: HTMLElement | undefined) {
		if (!to) return;
		current = to;
		visited = true;
		apply();
		to.focus();
		to.scrollIntoView({ block: 'nearest' });
	}

	function onkeydown(event: KeyboardEvent) {
		const target = event.target as HTMLElement;
		const item = target.closest<HTMLElement>(itemSelector);
		if (!item || !list.contains(item)) return;
		if (target !== item) {
			if (event.key === 'Escape') {
				event.preventDefault();
				move(item);
			}
			return;
		}
		const next = neighbour(items(), item, event.key);
		if (next) {
			event.preventDefault();
			move(next);
		}
	}

	function onfocusin(event: FocusEvent) {
		const item = (event.target as HTMLElement).closest<HTMLElement>(itemSelector);
		if (item && list.contains(item)) {
			current = item;
			visited = true;
		}
		apply();
	}

	const observer = new MutationObserver(schedule);
	observer.observe(list, { childList: true, subtree: true });
	list.addEventListener('keydown', onkeydown);
	list.addEventListener('focusin', onfocusin);
	list.addEventListener('focusout', schedule);
	apply();
	return {
		destroy() {
			observer.disconnect();
			list.removeEventListener('keydown', onkeydown);
			list.removeEventListener('focusin', onfocusin);
			list.removeEventListener('focusout', schedule);
		},
	};
}

/** Only `current` is a Tab stop among the items, and only the controls of the item holding the focus. */
function setTabStops(all: HTMLElement[], current: HTMLElement | null): void {
	const focused = all.find((item) => item.contains(document.activeElement));
	for (const item of all) {
		item.dataset.rovingItem = '';
		item.tabIndex = item === current ? 0 : -1;
		const open = item === focused;
		for (const control of item.querySelectorAll<HTMLElement>(CONTROLS)) control.tabIndex = open ? 0 : -1;
	}
}

/** The item a key moves to from `item`: the next or previous one, the first or the last. */
function neighbour(all: HTMLElement[], item: HTMLElement, key: string): HTMLElement | undefined {
	const at = all.indexOf(item);
	if (key === 'ArrowDown') return all[at + 1];
	if (key === 'ArrowUp') return all[at - 1];
	if (key === 'Home') return all[0];
	if (key === 'End') return all.at(-1);
	return undefined;
}

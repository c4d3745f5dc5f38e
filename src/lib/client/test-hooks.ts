import type { RoomStore } from './room.svelte.ts';

/**
 * End-to-end tests inject an update the server refuses through this handle (issue 3, check 5). Called only under
 * `__TEST_HOOKS__` (vite.config.ts), so production builds drop it.
 */
export function exposeForTests(stores: ReadonlyMap<string, RoomStore>): void {
	(globalThis as { __chatDebug?: unknown }).__chatDebug = {
		roomDoc: (roomId: string) => stores.get(roomId)?.debugDoc ?? null,
		roomProvider: (roomId: string) => stores.get(roomId)?.debugProvider ?? null,
	};
}

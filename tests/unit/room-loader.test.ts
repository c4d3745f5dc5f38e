import type { onLoadDocumentPayload } from '@hocuspocus/server';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { LiveRooms } from '../../server/collab/live-rooms.ts';
import { RoomLoader } from '../../server/collab/room-loader.ts';
import type { Db } from '../../server/db/index.ts';
import { createLogger } from '../../server/log.ts';
import { collabRejections } from '../../src/lib/protocol/errors.ts';

describe('loading a room', () => {
	it('refuses retryably (storage-unavailable) when the database does not answer, not as a denial', async () => {
		// What node-postgres throws when its pool stays exhausted (a reconnect storm) or the database is gone.
		const db = {
			kind: 'postgres',
			query: () => Promise.reject(new Error('timeout exceeded when trying to connect')),
		} as unknown as Db;
		const rooms = new LiveRooms();
		const loader = new RoomLoader(db, createLogger('silent'), rooms);
		const documentName = 'room:00000000-0000-4000-8000-000000000001';
		const load = loader.onLoadDocument({ document: new Y.Doc(), documentName } as onLoadDocumentPayload);
		// Hocuspocus sends a refusal's `reason`, and `permission-denied` for anything else.
		await expect(load).rejects.toEqual(collabRejections.unavailable);
		expect(rooms.get(documentName)).toBeUndefined();
	});
});

import { clearDocument, IndexeddbPersistence } from 'y-indexeddb';
import type * as Y from 'yjs';
import type { DocumentStore, StoredDocument } from './ports.ts';

/** Room documents in IndexedDB, one y-indexeddb database each, named by `databaseName`. */
export class IndexeddbStore implements DocumentStore {
	readonly #databaseName: (roomId: string) => string;

	constructor(databaseName: (roomId: string) => string) {
		this.#databaseName = databaseName;
	}

	open(roomId: string, doc: Y.Doc): StoredDocument {
		const persistence = new IndexeddbPersistence(this.#databaseName(roomId), doc);
		return {
			loaded: persistence.whenSynced.then(() => undefined),
			close: () => persistence.destroy(),
		};
	}

	clear(roomId: string): Promise<void> {
		return clearDocument(this.#databaseName(roomId));
	}
}

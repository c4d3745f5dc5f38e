import { download } from './api.ts';

/** How far "download my data" is: events received of those the server announced (null until it has). */
export interface DataProgress {
	events: number;
	total: number | null;
}

/**
 * "Download my data": the account's JSONL from the server (`GET /api/me/export`: a first line with the counts, one
 * line per room, one per event the user wrote), read as it streams so that the page can show how far it is.
 * Returns the file to save and what it holds.
 */
export async function fetchMyData(
	onProgress: (progress: DataProgress) => void,
	signal?: AbortSignal,
): Promise<{ file: Blob; filename: string; rooms: number; events: number }> {
	const response = await download('/api/me/export', signal);
	const filename =
		/filename="([^"]+)"/.exec(response.headers.get('content-disposition') ?? '')?.[1] ?? 'my-data.jsonl';
	const reader = response.body!.getReader();
	const decoder = new TextDecoder();
	const parts: Uint8Array[] = [];
	let header: { rooms?: number; events?: number } | null = null;
	let firstLine = '';
	let lines = 0;
	for (;;) {
		const { done, value } = await reader.read();
		if (done) break;
		parts.push(value);
		const text = decoder.decode(value, { stream: true });
		if (!header) {
			firstLine += text;
			const end = firstLine.indexOf('\n');
			if (end >= 0) header = JSON.parse(firstLine.slice(0, end)) as { rooms?: number; events?: number };
		}
		for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
		const before = 1 + (header?.rooms ?? 0);
		onProgress({ events: Math.max(0, lines - before), total: header?.events ?? null });
	}
	const rooms = header?.rooms ?? 0;
	const events = Math.max(0, lines - 1 - rooms);
	if (!header || (header.events !== undefined && events < header.events))
		throw new Error('The download stopped before the end. Please try again.');
	return { file: new Blob(parts as BlobPart[], { type: 'application/x-ndjson' }), filename, rooms, events };
}

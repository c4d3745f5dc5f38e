import type { RoomEvent } from '#protocol/events.ts';
import { collabRejections } from '#protocol/errors.ts';
import * as attachments from '../data/attachments.ts';
import type { Queryable } from '../db/index.ts';
import { UpdateRejected } from './validation.ts';

/**
 * The files new messages carry (issue 19) are stored: each was uploaded by the message's sender, for this room,
 * completely, and the message says the stored file's size and media type (and an image's size in pixels and
 * placeholder, when it gives them). So no member ever sees a message whose file is missing, someone else's, from
 * another room, or shown as what it is not. One query per update that carries files; none otherwise.
 */
export async function checkAttachments(db: Queryable, roomId: string, events: RoomEvent[]): Promise<void> {
	const refs = events.flatMap((event) =>
		event.kind === 'message'
			? (event.attachments ?? []).map((ref) => ({ ref, senderId: event.senderId }))
			: [],
	);
	if (refs.length === 0) return;
	const stored = await attachments.getMany(
		db,
		refs.map(({ ref }) => ref.id),
	);
	for (const { ref, senderId } of refs) {
		const file = stored.get(ref.id);
		const refuse = (why: string) =>
			new UpdateRejected(collabRejections.invalidUpdate, `attachment ${ref.id.slice(0, 8)}…: ${why}`);
		if (!file) throw refuse('no such file was uploaded');
		if (file.uploaderId !== senderId || file.roomId !== roomId)
			throw refuse('not a file you uploaded for this room');
		if (!file.sha256) throw refuse('the file is not completely uploaded yet');
		if (file.size !== ref.size || file.mediaType !== ref.mediaType)
			throw refuse(`the stored file is ${file.size} bytes of ${file.mediaType}`);
		// An image's size and placeholder, when the message gives them, are the stored ones: a client lays out
		// and blurs in what the message says before it has any of the file.
		if (differs(ref.width, file.width) || differs(ref.height, file.height))
			throw refuse(`the stored file is ${file.width}×${file.height} pixels`);
		if (differs(ref.placeholder, file.placeholder))
			throw refuse(`the stored file's placeholder is ${file.placeholder}`);
	}
}

/** A message's value that the stored file contradicts (either not given is no contradiction). */
function differs<T>(claimed: T | undefined, stored: T | null): boolean {
	return claimed !== undefined && stored !== null && claimed !== stored;
}

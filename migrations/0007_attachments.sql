-- Attachments (issue 19): one row per uploaded file, created when its upload starts (tus), complete once every
-- byte is in and stored under its SHA-256 in the blob store (server/files/blob-store.ts). The same bytes sent
-- twice are two rows and one blob. An image's metadata (EXIF, XMP, IPTC: where a photo was taken) is taken out
-- before it is stored; `size` is then the stored file's.
CREATE TABLE attachments (
	id text PRIMARY KEY,
	room_id uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
	uploader_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	-- The file's name as the sender gave it (shown, and offered when saving it; never a path on the server).
	name text NOT NULL,
	-- The length the upload announced (Upload-Length): counted against the uploader's quota from the start.
	size bigint NOT NULL,
	-- What the sender's browser said the file is, and what its bytes are (sniffed once complete): only the
	-- sniffed one is ever served.
	declared_type text NOT NULL,
	media_type text,
	sha256 text,
	-- An image's size in pixels, as shown (after its EXIF orientation).
	width integer,
	height integer,
	created_at timestamptz NOT NULL DEFAULT now(),
	completed_at timestamptz
);
CREATE INDEX attachments_uploader_idx ON attachments (uploader_id);
CREATE INDEX attachments_room_idx ON attachments (room_id);
CREATE INDEX attachments_sha256_idx ON attachments (sha256);

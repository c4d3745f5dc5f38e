-- Thumbnails and placeholders of image attachments (issue 19), made when an image's upload finishes
-- (server/files/images.ts). `thumb_sha256` names a blob of the same store as `sha256`: a WebP without metadata
-- that fits in 480×480 pixels, served at /api/files/:id/thumb. `placeholder` is the image's ThumbHash in base64
-- (at most 64 characters): the upload's last answer gives it, and a message's attachment may carry it only as
-- stored. Both are null for anything but an image sharp can read, for files stored before this migration, and
-- when making them failed (the file is stored all the same).
ALTER TABLE attachments ADD COLUMN thumb_sha256 text, ADD COLUMN placeholder text;
-- A blob may be a file's and a thumbnail's at once: garbage collection must find both uses.
CREATE INDEX attachments_thumb_sha256_idx ON attachments (thumb_sha256);

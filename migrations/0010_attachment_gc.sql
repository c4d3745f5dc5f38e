-- Garbage collection of attachments (issue 19, server/files/collect.ts): the indexes its queries need, so that a
-- pass costs what there is to collect and not a scan of every message.
--
-- Which messages list some of a batch of files: the ids a message lists, as a JSON array of strings, indexed so
-- that `jsonb_path_query_array(attachments, '$[*].id') ?| <ids>` is one index scan for the whole batch. Only
-- messages with files are indexed; without a pending list (fastupdate), which every scan would read through.
CREATE INDEX messages_attachment_ids_idx ON messages USING gin (jsonb_path_query_array(attachments, '$[*].id'))
	WITH (fastupdate = off) WHERE attachments IS NOT NULL;
-- Deleted messages that carried files, in order: their files go at the next pass.
CREATE INDEX messages_deleted_files_idx ON messages (seq)
	WHERE deleted_at IS NOT NULL AND attachments IS NOT NULL;
-- Uploads never finished: abandoned once older than the grace period.
CREATE INDEX attachments_incomplete_idx ON attachments (created_at) WHERE sha256 IS NULL;

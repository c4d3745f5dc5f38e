-- A `delete` event marks the message it targets (and that message's edits) as deleted: who and when. The
-- content stays in the row for the audit trail; reads mask it unless an admin asks for it.
ALTER TABLE messages ADD COLUMN deleted_at timestamptz;
ALTER TABLE messages ADD COLUMN deleted_by uuid;

-- A person's own events across every room, in order (GET /api/me/export: "download my data").
CREATE INDEX messages_sender_seq_idx ON messages (sender_id, seq);

-- The durable append of a batch of accepted updates in one statement, so one round trip to the database:
-- mirror the batch's events into `messages`, mark what its edits and deletes hit, and append the updates to the
-- document log, all in the statement's transaction. Before this the server sent BEGIN, the mirror insert, the
-- log insert and COMMIT one after another, each waiting for the last (and, under load, for its event loop).
--
-- Entries are written once: an event whose id the room's history already holds for another sender or kind is
-- refused. Then nothing of the batch is written: the function raises SQLSTATE CH409 with the taken keys
-- (`<room_id> <client_msg_id>`) as a JSON array in the error's detail, and the caller commits the rest again
-- without them. A re-sent event (same sender and kind) is not taken: it is skipped, and its update appended.
CREATE FUNCTION chat_durable_append(
	log_names text[],
	log_updates text[], -- base64
	m_room uuid[],
	m_id uuid[],
	m_kind text[],
	m_sender uuid[],
	m_content text[],
	m_reply uuid[],
	m_target uuid[],
	m_created timestamptz[]
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	inserted int;
	taken jsonb;
BEGIN
	IF cardinality(m_id) > 0 THEN
		INSERT INTO messages (room_id, client_msg_id, kind, sender_id, content, reply_to, target_id, created_at)
		SELECT * FROM unnest(m_room, m_id, m_kind, m_sender, m_content, m_reply, m_target, m_created)
		ON CONFLICT (room_id, client_msg_id) DO NOTHING;
		GET DIAGNOSTICS inserted = ROW_COUNT;
		IF inserted < cardinality(m_id) THEN
			-- A new statement sees what a concurrent writer of the same id committed (the insert waited for it).
			SELECT jsonb_agg(DISTINCT m.room_id::text || ' ' || m.client_msg_id::text) INTO taken
			FROM unnest(m_room, m_id, m_kind, m_sender) AS k (room_id, client_msg_id, kind, sender_id)
			JOIN messages m USING (room_id, client_msg_id)
			WHERE m.sender_id <> k.sender_id OR m.kind <> k.kind;
			IF taken IS NOT NULL THEN
				RAISE EXCEPTION 'event ids already taken in the room history' USING ERRCODE = 'CH409', DETAIL = taken::text;
			END IF;
		END IF;

		-- An edit written offline can arrive after its message was deleted: it is masked like the message.
		IF 'edit' = ANY (m_kind) THEN
			UPDATE messages e SET deleted_at = t.deleted_at, deleted_by = t.deleted_by
			FROM messages t, unnest(m_room, m_id, m_kind) AS k (room_id, client_msg_id, kind)
			WHERE k.kind = 'edit' AND e.room_id = k.room_id AND e.client_msg_id = k.client_msg_id AND e.kind = 'edit'
				AND t.room_id = e.room_id AND t.client_msg_id = e.target_id AND t.kind = 'message'
				AND t.deleted_at IS NOT NULL;
		END IF;

		-- A delete marks its target and the target's edits; the first delete is the one that counts.
		IF 'delete' = ANY (m_kind) THEN
			UPDATE messages m SET deleted_at = d.at, deleted_by = d.by
			FROM unnest(m_room, m_target, m_sender, m_created, m_kind) AS d (room_id, target, by, at, kind)
			WHERE d.kind = 'delete' AND m.room_id = d.room_id AND m.deleted_at IS NULL
				AND ((m.client_msg_id = d.target AND m.kind = 'message') OR (m.target_id = d.target AND m.kind = 'edit'));
		END IF;
	END IF;

	INSERT INTO document_updates (name, update)
	SELECT n, decode(u, 'base64') FROM unnest(log_names, log_updates) WITH ORDINALITY AS t (n, u, ord) ORDER BY ord;
END
$$;

-- The files a message carries (issue 19), mirrored with it: the message event's `attachments` as the server
-- validated them (`attachmentRef` in src/lib/protocol/events.ts: id, name, size, mediaType, width?, height?,
-- placeholder?), a JSON array in the order shown; null when the message has none, and for every other kind of event.
-- So a message paged in from the history API, found by search, or exported keeps its files. What the files' bytes
-- are (their SHA-256) stays in `attachments`, joined on the ids when a room is exported.
--
-- Messages mirrored before this migration keep no files here: the mirror did not write them yet.
ALTER TABLE messages ADD COLUMN attachments jsonb;

-- The durable append (0004) and its membership-checked form (0005), with one more array: each event's attachments
-- as JSON text (null for none), beside the other columns.
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
	m_created timestamptz[],
	m_attachments jsonb[]
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	inserted int;
	taken jsonb;
BEGIN
	IF cardinality(m_id) > 0 THEN
		-- unnest pads a shorter array with nulls: an empty m_attachments mirrors no files.
		INSERT INTO messages (room_id, client_msg_id, kind, sender_id, content, reply_to, target_id, created_at, attachments)
		SELECT * FROM unnest(m_room, m_id, m_kind, m_sender, m_content, m_reply, m_target, m_created, m_attachments)
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

CREATE FUNCTION chat_checked_append(
	writer_rooms uuid[],
	writers uuid[],
	log_names text[],
	log_updates text[],
	m_room uuid[],
	m_id uuid[],
	m_kind text[],
	m_sender uuid[],
	m_content text[],
	m_reply uuid[],
	m_target uuid[],
	m_created timestamptz[],
	m_attachments jsonb[]
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	refused jsonb;
BEGIN
	PERFORM 1 FROM memberships m
	JOIN unnest(writer_rooms, writers) AS w (room_id, user_id) ON m.room_id = w.room_id AND m.user_id = w.user_id
	ORDER BY m.room_id, m.user_id
	FOR SHARE OF m;

	-- A new statement: it sees a removal or role change that committed while the lock above waited for it.
	SELECT jsonb_agg(DISTINCT jsonb_build_array(w.room_id::text, w.user_id::text, m.role)) INTO refused
	FROM unnest(writer_rooms, writers) AS w (room_id, user_id)
	LEFT JOIN memberships m ON m.room_id = w.room_id AND m.user_id = w.user_id
	WHERE m.role IS NULL OR m.role = 'readonly';
	IF refused IS NOT NULL THEN
		RAISE EXCEPTION 'writers without a writing membership' USING ERRCODE = 'CH403', DETAIL = refused::text;
	END IF;

	PERFORM chat_durable_append(log_names, log_updates, m_room, m_id, m_kind, m_sender, m_content, m_reply,
		m_target, m_created, m_attachments);
END
$$;

-- The forms without attachments stay for a node still running the previous version during a rolling upgrade (its
-- rows then have no files, as before): the old append becomes the new one with no files; the old checked append
-- calls it unchanged.
CREATE OR REPLACE FUNCTION chat_durable_append(
	log_names text[],
	log_updates text[],
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
BEGIN
	PERFORM chat_durable_append(log_names, log_updates, m_room, m_id, m_kind, m_sender, m_content, m_reply,
		m_target, m_created, '{}'::jsonb[]);
END
$$;

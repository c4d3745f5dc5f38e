-- The checked append (0014) looks each writer's membership up by key, one row lock and read per writer, instead of
-- joining the memberships to the writer arrays in a CTE, sorting, hashing and aggregating the refusals with
-- jsonb_agg(DISTINCT …). That machinery cost more than everything else the check does: one connection, one message
-- per statement, 1,000 memberships as at the goal-1 load, statements in a new order each round (npm run
-- bench:append, two runs of 8 rounds of 400): p50 0.56–0.60 → 0.34–0.39 ms without the wait for the commit's flush
-- (the unchecked append: 0.32), 0.86–0.89 → 0.59–0.75 ms with it (the seed's INSERT: 0.38–0.40).
--
-- The answers are the same: writers are locked in the same order (room, then user; each pair once), and a lock
-- that waited for a removal or a role change returns the row as the change left it (no row for a removal, the new
-- role for a change), so the refusal names each writer without a writing membership with their role now, or null.
-- Same signature, so a node still on the previous version calls this one unchanged.
CREATE OR REPLACE FUNCTION chat_checked_append(
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
	w record;
	refused jsonb;
	writer_role text;
BEGIN
	FOR w IN
		SELECT DISTINCT t.room_id, t.user_id FROM unnest(writer_rooms, writers) AS t (room_id, user_id) ORDER BY 1, 2
	LOOP
		SELECT m.role INTO writer_role FROM memberships m
		WHERE m.room_id = w.room_id AND m.user_id = w.user_id
		FOR SHARE;
		IF writer_role IS NULL OR writer_role = 'readonly' THEN
			refused := coalesce(refused, '[]'::jsonb)
				|| jsonb_build_array(jsonb_build_array(w.room_id::text, w.user_id::text, writer_role));
		END IF;
	END LOOP;
	IF refused IS NOT NULL THEN
		RAISE EXCEPTION 'writers without a writing membership' USING ERRCODE = 'CH403', DETAIL = refused::text;
	END IF;

	PERFORM chat_durable_append(log_names, log_updates, m_room, m_id, m_kind, m_sender, m_content, m_reply,
		m_target, m_created, m_attachments);
END
$$;

-- Continuous authorization and the per-user channel.
--
-- Each member's notification level for a room (every message, mentions only, or none), kept on the server so
-- that every device of the user agrees. NULL: the default, every message in a 1:1 room and mentions in a group.
ALTER TABLE memberships ADD COLUMN notify text CHECK (notify IN ('all', 'mentions', 'none'));

-- A deleted account leaves its rooms behind: who created a room is then unknown.
ALTER TABLE rooms ALTER COLUMN created_by DROP NOT NULL;
ALTER TABLE rooms DROP CONSTRAINT rooms_created_by_fkey;
ALTER TABLE rooms ADD CONSTRAINT rooms_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL;

-- The durable append of updates written by members (chat_durable_append, 0004), checked against membership in
-- the same transaction. Each writer's membership row is locked (FOR SHARE) until the append commits, so a
-- removal or a change of role (which must update or delete that row) waits for the append, or the append waits
-- for it: every update is ordered wholly before or wholly after a change of membership. An update whose writer is
-- no longer a member with a writing role when its append runs is written nowhere: the function raises SQLSTATE
-- CH403 with `[[room_id, user_id, role or null], …]` in the error's detail, and the caller refuses those updates
-- and commits the rest again without them.
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
	m_created timestamptz[]
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
		m_target, m_created);
END
$$;

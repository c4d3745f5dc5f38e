-- Each member's read position in a room: the newest message they have seen, in display order
-- (created_at, then client_msg_id). It only moves forward. Devices of one user share it.
CREATE TABLE read_positions (
	room_id uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
	user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	last_read_at timestamptz NOT NULL,
	last_read_id uuid NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (room_id, user_id)
);

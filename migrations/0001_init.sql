-- Users, sessions, rooms, the durable Yjs log and the message mirror.
-- Names are unique without regard to case: the unique index is on lower(name).

CREATE TABLE users (
	id uuid PRIMARY KEY,
	name text NOT NULL,
	password_hash text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	last_seen_at timestamptz
);
CREATE UNIQUE INDEX users_name_lower_idx ON users (lower(name));

-- Refresh tokens are stored as SHA-256 hashes. A family is one login's chain of rotations:
-- presenting a revoked token revokes the whole family (theft detection).
CREATE TABLE refresh_tokens (
	id uuid PRIMARY KEY,
	family_id uuid NOT NULL,
	user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	token_hash text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL,
	revoked_at timestamptz,
	replaced_by uuid
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE rooms (
	id uuid PRIMARY KEY,
	name text,
	is_group boolean NOT NULL,
	-- For 1:1 rooms: the two user ids, sorted and joined, so the pair maps to one room.
	direct_key text UNIQUE,
	created_by uuid NOT NULL REFERENCES users (id),
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
	room_id uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
	user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'readonly')),
	joined_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- The compacted Yjs state of each document, and the durable append log of accepted updates
-- that compaction folds into it.
CREATE TABLE documents (
	name text PRIMARY KEY,
	state bytea NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE document_updates (
	id bigserial PRIMARY KEY,
	name text NOT NULL,
	update bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX document_updates_name_id_idx ON document_updates (name, id);

-- One row per event in a room's `messages` map. The upsert is idempotent on (room_id, client_msg_id).
CREATE TABLE messages (
	seq bigserial PRIMARY KEY,
	room_id uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
	client_msg_id uuid NOT NULL,
	kind text NOT NULL,
	sender_id uuid NOT NULL,
	content text,
	reply_to uuid,
	target_id uuid,
	created_at timestamptz NOT NULL,
	received_at timestamptz NOT NULL DEFAULT now(),
	tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(content, ''))) STORED,
	UNIQUE (room_id, client_msg_id)
);
CREATE INDEX messages_room_seq_idx ON messages (room_id, seq);
CREATE INDEX messages_room_created_idx ON messages (room_id, created_at);
CREATE INDEX messages_tsv_idx ON messages USING gin (tsv);

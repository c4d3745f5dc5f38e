-- What a session was started from ("Chrome on Linux"), read from the User-Agent at sign-in, for the account page's
-- list of sessions. Only a login's first token has it; its rotations leave it empty.
ALTER TABLE refresh_tokens ADD COLUMN device text;

-- A group's topic: one line under its name, set by its owner or an admin (PATCH /api/rooms/:id).
ALTER TABLE rooms ADD COLUMN topic text;

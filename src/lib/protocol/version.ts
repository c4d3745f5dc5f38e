/**
 * Protocol versions, exchanged both ways at connect:
 * - a client sends the version it was built for as `?protocol=<n>` on the WebSocket URL; a server refuses clients
 *   below `OLDEST_CLIENT_PROTOCOL` with `outdated-client` (they must reload to get a client it can trust);
 * - a server says its version in `GET /api/config` and in the user channel's `state`; a client built for a lower
 *   one tells its user to reload.
 * A client that sends no version (a bot written against docs/protocol.md) is accepted.
 *
 * History: 1 — before versions; 2 — the user channel; 3 — clients send their version and apply the content filter
 * (`GET /api/config`) before writing; 4 — a message may carry `attachments` (a client of 3 refuses such a message
 * as malformed, so it is told to reload; it writes nothing a server of 4 refuses, so it is still accepted); 5 — the
 * user channel says a room's new message and counts in a short `room-activity` to clients of 5 or later, instead of
 * the whole room (`ROOM_ACTIVITY_PROTOCOL`); 6 — a client that has a room's document open on its user channel's
 * socket works out the room's newest message and its counts from the document, and gets no `room-activity` after
 * a message there (`OPEN_ROOM_ACTIVITY_PROTOCOL`).
 */
export const PROTOCOL_VERSION = 6;

/** The oldest client version a server accepts: older ones would write what this server refuses. */
export const OLDEST_CLIENT_PROTOCOL = 3;

/** Clients of this version or later get `room-activity` on their user channel; older ones, and bots that say no
 * version, get the whole `room` as before. */
export const ROOM_ACTIVITY_PROTOCOL = 5;

/** Clients of this version or later get no `room-activity` after a message in a room whose document they have open
 * on the user channel's socket: they work it out from the document (docs/protocol.md section 10). */
export const OPEN_ROOM_ACTIVITY_PROTOCOL = 6;

/** The WebSocket URL parameter that carries a client's version. */
export const PROTOCOL_PARAMETER = 'protocol';

import type { Hocuspocus } from '@hocuspocus/server';
import type { RateWindow } from '../rate-limiter.ts';

/** What the collaboration server keeps on a crossws peer (a socket), beside crossws's own. */
export interface Peer {
	websocket: unknown;
	request: unknown;
	__connection?: ReturnType<Hocuspocus['handleConnection']>;
	/** Set once the socket went over its frame budget: what it still sends is dropped unread. */
	__flooded?: boolean;
	/** The frames it sent in this window of its budget (WS_FRAMES_PER_10S). */
	__frames?: RateWindow;
}

/** crossws's node adapter's own fields of a peer (crossws 0.4: `_internal`). */
interface NodePeerInternals {
	nodeReq?: { url?: string; socket?: unknown; _context?: unknown };
	request?: unknown;
}

/** The one set of headers the slim requests share: no hook of ours reads one (a token comes in the auth message). */
const noHeaders = new Headers();

/** The id Hocuspocus gave a socket's connection (its logs and hooks call it `socketId`), for ours. */
export function socketIdOf(peer: unknown): string | undefined {
	return ((peer as Peer).__connection as { socketId?: string } | undefined)?.socketId;
}

/**
 * What a socket keeps of its upgrade request: its path and query, which Hocuspocus hands every hook of every
 * document the socket opens (`requestParameters`: the client's protocol version). crossws kept Node's
 * `IncomingMessage` with its raw headers and a web `Request` built over them for as long as the socket was open,
 * and Hocuspocus the same `Request`: about 1.7 KB a socket that nothing read again (docs/benchmarks.md, "Where a
 * user's heap goes"). After this crossws's peer holds only what its getters read (`remoteAddress`, `context`),
 * and the request object returned is what to give Hocuspocus. With another adapter, or a crossws whose peer is
 * shaped otherwise, the peer is left as it is and its own request returned.
 */
export function keepOfRequest(peer: Peer): Request {
	const internals = (peer as unknown as { _internal?: NodePeerInternals })._internal;
	const nodeReq = internals?.nodeReq;
	if (!internals || typeof nodeReq?.url !== 'string' || internals.request !== peer.request)
		return peer.request as Request;
	const request = { url: nodeReq.url, headers: noHeaders } as unknown as Request;
	internals.nodeReq = { socket: nodeReq.socket, _context: nodeReq._context };
	internals.request = request;
	return request;
}

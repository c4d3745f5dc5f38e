import type { IncomingMessage } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';

/**
 * Who the client is, behind the configured reverse proxies (TRUST_PROXY): the socket's peer when it is not a
 * trusted proxy, else the last `X-Forwarded-For` entry that no trusted proxy added. What a client writes into the
 * header itself comes before that and is never believed. HTTP (Fastify's `trustProxy`, given the same list) and
 * WebSocket upgrades use the same rule, so every per-address limit counts the same address.
 */
export function clientAddress(trusted: readonly string[]): (request: IncomingMessage) => string {
	if (trusted.length === 0) return (request) => request.socket.remoteAddress ?? 'unknown';
	const trust = proxyAddr.compile([...trusted]);
	return (request) => proxyAddr(request, trust) || 'unknown';
}

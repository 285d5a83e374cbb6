import type { ServerResponse } from 'node:http';

/**
 * A JSON answer through node's own response API: the Content-Type, Content-Length and body
 * express's res.json() would write, without its conditional-GET step (an answer that carries a
 * token or an error is never a 304, whatever If-None-Match says). Express's routes and the hot
 * route (hot-route.ts) answer through it alike, so the two cannot differ.
 */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  res.end(json);
}

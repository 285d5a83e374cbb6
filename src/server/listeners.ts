import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { buildHandler } from '../app';
import type { Deps } from '../deps';

/**
 * The vault's listening servers, not yet listening: the API on server.port and, with
 * server.publicPort, a second one serving only the public routes (the connect flow's start and
 * callback, inbound webhooks, /healthz). With server.tls both speak HTTPS; only the API port
 * asks for a client certificate, because browsers and providers cannot present one.
 */
export interface Listener {
  surface: 'all' | 'public';
  server: HttpServer | HttpsServer;
  host: string;
  port: number;
  scheme: 'http' | 'https';
  /** Whether the handshake asks for a client certificate, and whether it refuses a connection without a valid one. */
  clientCert: 'off' | 'optional' | 'required';
}

/** A slow or silent client gives up its TLS handshake after this long, as it does its headers. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export function createListeners(deps: Deps): Listener[] {
  const { host, port, publicPort, tls } = deps.config.server;
  const make = (surface: Listener['surface'], listenPort: number): Listener => {
    const handler = buildHandler(deps, { surface });
    const askForCert = surface === 'all' && tls?.ca !== undefined;
    let server: HttpServer | HttpsServer;
    if (tls) {
      const options: ServerOptions = {
        cert: tls.cert,
        key: tls.key.reveal(),
        minVersion: 'TLSv1.2',
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        // `ca` replaces the default trust store for client certificates: only this CA vouches for callers.
        ...(askForCert ? { ca: tls.ca, requestCert: true, rejectUnauthorized: tls.requireClientCert } : {}),
      };
      server = createHttpsServer(options, handler);
      // TLS 1.2 renegotiation could swap the client certificate on a connection after its
      // verification result was taken; a connection keeps the identity it was opened with.
      server.on('secureConnection', (socket: TLSSocket) => socket.disableRenegotiation());
      // A failed handshake (no certificate, a foreign CA, a scanner) is the client's problem; at
      // debug so a scan cannot flood the log, with the reason code only.
      server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) =>
        deps.logger.debug({ code: err.code, remoteAddress: socket.remoteAddress, surface }, 'TLS handshake failed'),
      );
    } else {
      server = createHttpServer(handler);
    }
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    server.keepAliveTimeout = 65_000; // above common load-balancer idle timeouts (60 s)
    return {
      surface,
      server,
      host,
      port: listenPort,
      scheme: tls ? 'https' : 'http',
      clientCert: !askForCert ? 'off' : tls?.requireClientCert ? 'required' : 'optional',
    };
  };
  return publicPort === undefined ? [make('all', port)] : [make('all', port), make('public', publicPort)];
}

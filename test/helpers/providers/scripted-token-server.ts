import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * One scripted answer. An object body is JSON-encoded (content-type application/json unless
 * `headers` names another); a string body is sent as is, with only the headers given.
 */
export interface ScriptedResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string | object;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Never answer (the connection stays open until the client gives up or stop()). */
  hang?: boolean;
}

export interface ScriptedRequest {
  method: string;
  /** Path and query, as received. */
  url: string;
  /** Lower-cased, as node:http parses them. */
  headers: IncomingHttpHeaders;
  /** The raw body. */
  body: string;
  /** The body parsed as application/x-www-form-urlencoded (the last value wins for a repeated name). */
  form: Record<string, string>;
  /** Epoch milliseconds. */
  receivedAt: number;
}

/** What an unscripted request gets: loud, so a test that forgot to script a call sees it. */
const FALLBACK: ScriptedResponse = { status: 500, body: { error: 'server_error', error_description: 'no scripted response' } };

/**
 * An in-process HTTP server that answers from a queue of scripted responses, for token-endpoint
 * behaviour oidc-provider does not produce (form-encoded answers, string expires_in, redirects,
 * malformed JSON, ...). Every path is answered the same way and every request is recorded.
 */
export class ScriptedTokenServer {
  private readonly queue: ScriptedResponse[] = [];
  private readonly received: ScriptedRequest[] = [];
  private fallback: ScriptedResponse = FALLBACK;
  private stopped: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<ScriptedTokenServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const scripted = new ScriptedTokenServer(server, (server.address() as AddressInfo).port);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      scripted.handle(req, res).catch(() => res.destroy());
    });
    return scripted;
  }

  /** http://127.0.0.1:<port> */
  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The URL to configure as a token endpoint (any path answers the same). */
  get url(): string {
    return `${this.origin}/token`;
  }

  /** Queues responses, answered in order, one per request. */
  respond(...responses: ScriptedResponse[]): void {
    this.queue.push(...responses);
  }

  /** The answer once the queue is empty (initially a 500 server_error). */
  setDefault(response: ScriptedResponse): void {
    this.fallback = response;
  }

  /** Scripted responses not yet used. */
  get pending(): number {
    return this.queue.length;
  }

  /** Every request received, oldest first. */
  get requests(): readonly ScriptedRequest[] {
    return this.received;
  }

  clearRequests(): void {
    this.received.length = 0;
  }

  /** Closes the server and every open connection, hung ones included. Safe to call twice. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.stopped;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    this.received.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body,
      form: Object.fromEntries(new URLSearchParams(body)),
      receivedAt: Date.now(),
    });

    const response = this.queue.shift() ?? this.fallback;
    if (response.hang) return;
    if (response.delayMs) await new Promise((resolve) => setTimeout(resolve, response.delayMs));
    if (res.destroyed) return;

    const headers: Record<string, string> = { ...response.headers };
    const has = (name: string) => Object.keys(headers).some((given) => given.toLowerCase() === name);
    let payload = '';
    if (typeof response.body === 'string') {
      payload = response.body;
    } else if (response.body !== undefined) {
      payload = JSON.stringify(response.body);
      if (!has('content-type')) headers['content-type'] = 'application/json';
    }
    if (!has('content-length')) headers['content-length'] = String(Buffer.byteLength(payload));
    res.writeHead(response.status, headers);
    res.end(payload);
  }
}

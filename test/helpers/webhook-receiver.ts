import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a receiver got, as it arrived. */
export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  body: string;
  /** The status the receiver answered; 0 when it answered nothing ('hang' or 'drop'). */
  status: number;
  receivedAt: number;
}

/**
 * A webhook subscriber on loopback: records every request and answers with the status its
 * script says (200 by default; `answer` sets the next statuses, e.g. [503, 503] then 200s;
 * 'hang' holds the request open; 'drop' destroys the socket). A 3xx answer carries a Location
 * back to this receiver, so a sender that followed it would show up as an extra request.
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  private script: (number | 'hang' | 'drop')[] = [];
  private fallback: number | 'hang' | 'drop' = 200;

  private constructor(private readonly server: Server) {}

  static async start(port = 0): Promise<WebhookReceiver> {
    const server = createServer();
    const receiver = new WebhookReceiver(server);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => receiver.handle(req.headers, Buffer.concat(chunks).toString('utf8'), res));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return receiver;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks`;
  }

  /** Answers the next requests with these, then with `then` (default 200). */
  answer(statuses: (number | 'hang' | 'drop')[], then: number | 'hang' | 'drop' = 200): void {
    this.script = [...statuses];
    this.fallback = then;
  }

  /** Waits until `count` requests have arrived (at most `timeoutMs`). */
  async waitFor(count: number, timeoutMs = 10_000): Promise<ReceivedWebhook[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} webhooks, got ${this.received.length}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.received.slice(0, count);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(headers: IncomingHttpHeaders, body: string, res: ServerResponse): void {
    const action = this.script.length > 0 ? this.script.shift()! : this.fallback;
    if (action === 'hang' || action === 'drop') {
      this.received.push({ headers, body, status: 0, receivedAt: Date.now() });
      // A hung request stays open until the sender gives up or stop() closes it.
      if (action === 'drop') res.socket?.destroy();
      return;
    }
    this.received.push({ headers, body, status: action, receivedAt: Date.now() });
    const location = action >= 300 && action < 400 ? { Location: '/hooks/moved' } : {};
    res.writeHead(action, { 'Content-Type': 'text/plain', ...location }).end(action < 300 ? 'ok' : 'no');
  }
}

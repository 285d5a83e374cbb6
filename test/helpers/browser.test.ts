import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Browser, parseForms, parseSetCookie } from './browser';

/**
 * The test browser against plain loopback servers: what a connect flow relies on (cookies across
 * ports, paths, expiry, SameSite on cross-site redirects, redirect following, forms).
 */

interface Seen {
  method: string;
  path: string;
  cookie: string | undefined;
  body: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

interface Site {
  /** http://host:port */
  origin: string;
  seen: Seen[];
  route(path: string, handler: Handler): void;
  close(): Promise<void>;
}

async function site(host = '127.0.0.1'): Promise<Site> {
  const routes = new Map<string, Handler>();
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      seen.push({ method: req.method ?? '', path, cookie: req.headers.cookie, body });
      const handler = routes.get(path);
      if (handler) return handler(req, res, body);
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end(`page ${path}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://${host}:${port}`,
    seen,
    route: (path, handler) => routes.set(path, handler),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function redirect(status: number, location: string, cookies: string[] = []): Handler {
  return (_req, res) => {
    res.writeHead(status, { location, 'set-cookie': cookies, 'content-length': '0' });
    res.end();
  };
}

function setCookies(...cookies: string[]): Handler {
  return (_req, res) => {
    res.writeHead(200, { 'set-cookie': cookies, 'content-type': 'text/plain' });
    res.end('ok');
  };
}

describe('Browser', () => {
  let a: Site;
  let b: Site;
  let other: Site;
  beforeEach(async () => {
    [a, b, other] = await Promise.all([site(), site(), site('127.0.0.2')]);
  });
  afterEach(async () => {
    await Promise.all([a.close(), b.close(), other.close()]);
  });

  const cookieAt = (s: Site, path: string) => s.seen.filter((r) => r.path === path).map((r) => r.cookie);

  it('cookies are per host, not per port: a cookie set by one port goes to another; never to another host', async () => {
    a.route('/set', setCookies('sid=1; Path=/; HttpOnly; SameSite=Lax'));
    const browser = new Browser();
    await browser.get(`${a.origin}/set`);
    await browser.get(`${b.origin}/read`);
    await browser.get(`${other.origin}/read`);
    expect(cookieAt(b, '/read')).toEqual(['sid=1']);
    expect(cookieAt(other, '/read')).toEqual([undefined]);
    expect(browser.cookies(`${b.origin}/`)).toEqual([
      { name: 'sid', value: '1', domain: '127.0.0.1', hostOnly: true, path: '/', expiresAt: undefined, secure: false, httpOnly: true, sameSite: 'lax' },
    ]);
  });

  it('without Path, a cookie belongs to the directory of the URL that set it; Path matches whole segments', async () => {
    a.route('/app/connect/start', setCookies('state=s1', 'wide=w; Path=/app'));
    const browser = new Browser();
    await browser.get(`${a.origin}/app/connect/start`);
    const names = (path: string) => browser.cookies(`${a.origin}${path}`).map((c) => c.name);
    expect(names('/app/connect')).toEqual(['state', 'wide']);
    expect(names('/app/connect/x/y')).toEqual(['state', 'wide']);
    expect(names('/app/connector')).toEqual(['wide']);
    expect(names('/app')).toEqual(['wide']);
    expect(names('/application')).toEqual([]);
    expect(names('/')).toEqual([]);
  });

  it('a new value replaces the old; Max-Age=0 or a past Expires deletes; Max-Age wins over Expires', async () => {
    a.route('/v1', setCookies('k=1; Path=/', 'gone=x; Path=/', 'old=x; Path=/'));
    a.route('/v2', setCookies('k=2; Path=/', 'gone=; Path=/; Max-Age=0', 'old=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT', 'both=y; Path=/; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT'));
    const browser = new Browser();
    await browser.get(`${a.origin}/v1`);
    await browser.get(`${a.origin}/v2`);
    expect(browser.cookies(a.origin).map((c) => `${c.name}=${c.value}`).sort()).toEqual(['both=y', 'k=2']);
  });

  it('cookies expire on the injected clock', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    a.route('/set', setCookies('short=1; Path=/; Max-Age=10', 'dated=1; Path=/; Expires=Tue, 01 Jan 2030 00:01:00 GMT', 'session=1; Path=/'));
    const browser = new Browser({ now: () => now });
    await browser.get(`${a.origin}/set`);
    expect(browser.cookies(a.origin).map((c) => c.name).sort()).toEqual(['dated', 'session', 'short']);
    now += 11_000;
    expect(browser.cookies(a.origin).map((c) => c.name).sort()).toEqual(['dated', 'session']);
    now += 60_000;
    await browser.get(`${a.origin}/read`);
    expect(cookieAt(a, '/read')).toEqual(['session=1']);
  });

  it('a Domain attribute that is not the host itself is refused for an IP host; Secure cookies still go to loopback over http', async () => {
    a.route('/set', setCookies('foreign=1; Domain=example.test', 'parent=1; Domain=0.0.1', 'same=1; Domain=127.0.0.1', 'sec=1; Secure'));
    const browser = new Browser();
    await browser.get(`${a.origin}/set`);
    expect(browser.allCookies().map((c) => [c.name, c.hostOnly])).toEqual([
      ['same', false],
      ['sec', true],
    ]);
    expect(parseSetCookie('sec=1; Secure', new URL('http://127.0.0.1/'), 0)?.secure).toBe(true);
  });

  it('follow() walks 301/302/303/307 with relative Locations, stores cookies at every hop, and lists the hops', async () => {
    a.route('/start', redirect(302, '/step/one', ['first=1; Path=/']));
    a.route('/step/one', redirect(301, 'two?x=1'));
    a.route('/step/two', redirect(307, `${b.origin}/elsewhere`, ['second=2; Path=/']));
    b.route('/elsewhere', redirect(303, '../final'));
    const browser = new Browser();
    const result = await browser.follow(`${a.origin}/start`);
    expect({ status: result.status, url: result.url.href, body: result.body }).toEqual({ status: 200, url: `${b.origin}/final`, body: 'page /final' });
    expect(result.hops.map((u) => u.href)).toEqual([`${a.origin}/start`, `${a.origin}/step/one`, `${a.origin}/step/two?x=1`, `${b.origin}/elsewhere`, `${b.origin}/final`]);
    // cookies set mid-chain went along to the next hops, on the other port too
    expect(cookieAt(b, '/final')).toEqual(['first=1; second=2']);
  });

  it('follow() with until stops at the matching Location without requesting it', async () => {
    a.route('/authorize', redirect(303, 'http://127.0.0.1:9/callback?code=abc&state=s'));
    const result = await new Browser().follow(`${a.origin}/authorize`, { until: (u) => u.pathname === '/callback' });
    expect({ status: result.status, url: result.url.href, hops: result.hops.map((u) => u.pathname) }).toEqual({
      status: 303,
      url: 'http://127.0.0.1:9/callback?code=abc&state=s',
      hops: ['/authorize'],
    });
  });

  it('follow() gives up after maxHops, naming every URL', async () => {
    a.route('/loop', redirect(302, '/loop'));
    await expect(new Browser().follow(`${a.origin}/loop`, { maxHops: 3 })).rejects.toThrow(/more than 3 requests[\s\S]*\/loop/);
    expect(a.seen).toHaveLength(3);
  });

  it('submit() posts a form, then continues with GET after 303 and posts again after 307', async () => {
    a.route('/login', redirect(303, '/done'));
    a.route('/api', redirect(307, '/api2'));
    a.route('/api2', redirect(303, '/done2'));
    const browser = new Browser();
    const done = await browser.submit(`${a.origin}/login`, { user: 'alice', xsrf: 'x y' });
    expect({ status: done.status, body: done.body }).toEqual({ status: 200, body: 'page /done' });
    await browser.submit(`${a.origin}/api`, new URLSearchParams({ a: '1' }));
    expect(a.seen.map((r) => `${r.method} ${r.path} ${r.body}`)).toEqual(['POST /login user=alice&xsrf=x+y', 'GET /done ', 'POST /api a=1', 'POST /api2 a=1', 'GET /done2 ']);
  });

  it('SameSite=Strict cookies are not sent on a redirect from another site; Lax and None are', async () => {
    a.route('/set', setCookies('strict=1; Path=/; SameSite=Strict', 'lax=1; Path=/; SameSite=Lax', 'none=1; Path=/; SameSite=None; Secure', 'plain=1; Path=/'));
    other.route('/idp', redirect(302, `${a.origin}/callback`));
    b.route('/hop', redirect(302, `${a.origin}/same-site`));
    const browser = new Browser();
    await browser.get(`${a.origin}/set`);
    await browser.follow(`${other.origin}/idp`);
    await browser.follow(`${b.origin}/hop`);
    expect(cookieAt(a, '/callback')).toEqual(['lax=1; none=1; plain=1']);
    // another port of the same host is the same site
    expect(cookieAt(a, '/same-site')).toEqual(['strict=1; lax=1; none=1; plain=1']);
  });

  it('sends browser-like Accept, so servers answer HTML error pages', async () => {
    a.route('/h', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(req.headers.accept);
    });
    expect((await new Browser().get(`${a.origin}/h`)).body).toMatch(/^text\/html/);
  });
});

describe('parseForms', () => {
  it('reads action (resolved), method and named inputs with decoded values', () => {
    const html = `<p>x</p>
      <form id="op.deviceInputForm" novalidate method="post" action="/device">
        <input type="hidden" name="xsrf" value="a&amp;b&#39;c"/>
        <input type="text" name="user_code" placeholder="Enter code" autofocus></input>
        <input type="submit" value="go">
      </form>
      <form action='next'><input name=q value=1></form>`;
    expect(parseForms(html, new URL('http://127.0.0.1:4000/device/x'))).toEqual([
      { action: new URL('http://127.0.0.1:4000/device'), method: 'post', fields: { xsrf: "a&b'c", user_code: '' } },
      { action: new URL('http://127.0.0.1:4000/device/next'), method: 'get', fields: { q: '1' } },
    ]);
  });
});

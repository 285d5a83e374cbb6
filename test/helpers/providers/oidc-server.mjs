// A real OAuth 2.0 provider (oidc-provider 9) for tests, run as a child process because
// oidc-provider is ESM-only and jest's CommonJS runtime cannot load it.
//
//   node test/helpers/providers/oidc-server.mjs <port> [--access-ttl <seconds>] [--no-rotation]
//                                                      [--exit-with-stdin]
//
// Prints `ready <port>` once listening on 127.0.0.1. --exit-with-stdin makes it quit when its
// stdin closes, so a crashed test runner cannot leave it behind.
//
// A plain node:http server sits in front of provider.callback(): it records every request to the
// token and revocation endpoints, can answer them itself in a failure mode, and serves test-control routes under
// /__test/ (JSON in, JSON out). See test/helpers/providers/oidc.ts for the typed client.
import { Buffer } from 'node:buffer';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { URL, URLSearchParams } from 'node:url';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const TOKEN_PATH = '/token';
const REVOCATION_PATH = '/token/revocation';
const MAX_BODY_BYTES = 64 * 1024;

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'access-ttl': { type: 'string', default: '3600' },
    'no-rotation': { type: 'boolean', default: false },
    'exit-with-stdin': { type: 'boolean', default: false },
  },
});
const port = Number(positionals[0]);
const accessTtl = Number(flags['access-ttl']);
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !Number.isInteger(accessTtl) || accessTtl <= 0) {
  console.error('usage: oidc-server.mjs <port> [--access-ttl <seconds>] [--no-rotation] [--exit-with-stdin]');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${port}`;
const redirectUris = ['http://127.0.0.1/callback'];
const grantTypes = ['authorization_code', 'refresh_token'];

// The built-in memory store is an LRU of 1,000 entries: under load, live tokens would vanish.
const store = new LRU({ maxSize: 1_000_000 });

const provider = new Provider(issuer, {
  adapter: (model) => new MemoryAdapter(model, store, 0),
  clients: [
    { client_id: 'basic-client', client_secret: 'basic-secret', token_endpoint_auth_method: 'client_secret_basic', grant_types: grantTypes, redirect_uris: redirectUris },
    { client_id: 'post-client', client_secret: 'post-secret', token_endpoint_auth_method: 'client_secret_post', grant_types: grantTypes, redirect_uris: redirectUris },
  ],
  // Expiry tests must not get 15 s of grace.
  clockTolerance: 0,
  cookies: { keys: ['oidc-test-server-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  // By default refresh tokens come only with offline_access and prompt=consent.
  issueRefreshToken: () => true,
  rotateRefreshToken: !flags['no-rotation'],
  routes: { token: TOKEN_PATH, revocation: REVOCATION_PATH },
  ttl: {
    AccessToken: accessTtl,
    RefreshToken: 14 * 24 * 60 * 60,
    Grant: 14 * 24 * 60 * 60,
    Session: 14 * 24 * 60 * 60,
    Interaction: 60 * 60,
  },
});

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---- counters, fed by provider events and by the wrapper -------------------------------------

function emptyCounters() {
  return {
    token: { total: 0 },
    refresh: { total: 0, success: 0, errors: {}, details: {} },
    revocation: { total: 0, success: 0, errors: {} },
    injected: 0,
  };
}
let counters = emptyCounters();
let recorded = [];

function countError(bucket, error) {
  bucket.errors[error] = (bucket.errors[error] ?? 0) + 1;
}

// Refresh outcomes come from provider events; revocation has no success event, so the wrapper
// counts its requests and 200 answers, and only its errors come from events.
function bump(bucket, error) {
  bucket.total += 1;
  if (error === undefined) bucket.success += 1;
  else countError(bucket, error);
}

// Params are missing when the request failed before oidc-provider parsed them (e.g. a bad
// content type); the wrapper's own parse of the body is the fallback.
function grantTypeOf(ctx) {
  return ctx.oidc?.params?.grant_type ?? ctx.req.testForm?.grant_type;
}

provider.on('grant.success', (ctx) => {
  if (grantTypeOf(ctx) === 'refresh_token') bump(counters.refresh);
});
provider.on('grant.error', (ctx, err) => {
  if (grantTypeOf(ctx) !== 'refresh_token') return;
  bump(counters.refresh, err.error ?? 'unknown');
  // e.g. 'refresh token already used' (reuse detected, grant revoked) vs 'refresh token not found'
  if (err.error_detail) counters.refresh.details[err.error_detail] = (counters.refresh.details[err.error_detail] ?? 0) + 1;
});
provider.on('revocation.error', (_ctx, err) => countError(counters.revocation, err.error ?? 'unknown'));
provider.on('server_error', (ctx, err) => {
  console.error('oidc-provider server_error', err);
  if (ctx.path === TOKEN_PATH && grantTypeOf(ctx) === 'refresh_token') bump(counters.refresh, 'server_error');
  if (ctx.path === REVOCATION_PATH) countError(counters.revocation, 'server_error');
});

// ---- failure modes for the token and revocation endpoints ------------------------------------

const MODES = new Set(['normal', 'status', 'slow', 'hang']);
const ENDPOINTS = new Set(['token', 'revocation']);
const modes = { token: { mode: 'normal' }, revocation: { mode: 'normal' } };
const hung = new Set();

function setMode(input) {
  if (!input || !MODES.has(input.mode)) throw new HttpError(400, `mode must be one of ${[...MODES].join(', ')}`);
  const endpoint = input.endpoint ?? 'token';
  if (!ENDPOINTS.has(endpoint)) throw new HttpError(400, 'endpoint must be "token" or "revocation"');
  if (input.mode === 'status' && !(Number.isInteger(input.status) && input.status >= 100 && input.status <= 599)) {
    throw new HttpError(400, 'mode "status" needs an integer status');
  }
  if (input.times !== undefined && !(Number.isInteger(input.times) && input.times >= 0)) {
    throw new HttpError(400, 'times must be a non-negative integer');
  }
  modes[endpoint] = input.mode === 'normal' ? { mode: 'normal' } : { ...input, remaining: input.times };
}

/** The mode for this request to `endpoint`; counts it against `times`. */
function takeMode(endpoint) {
  const current = modes[endpoint];
  if (current.mode === 'normal') return current;
  if (current.remaining !== undefined) {
    if (current.remaining <= 0) {
      modes[endpoint] = { mode: 'normal' };
      return modes[endpoint];
    }
    current.remaining -= 1;
    if (current.remaining === 0) modes[endpoint] = { mode: 'normal' };
  }
  return current;
}

function answerInjected(res, current) {
  const headers = { ...current.headers };
  if (current.retryAfter !== undefined) headers['retry-after'] = String(current.retryAfter);
  let payload = '';
  if (current.body !== undefined) {
    const contentType = current.contentType ?? 'application/json';
    headers['content-type'] = contentType;
    if (typeof current.body === 'string') payload = current.body;
    else if (contentType.startsWith('application/x-www-form-urlencoded')) payload = new URLSearchParams(current.body).toString();
    else payload = JSON.stringify(current.body);
  } else if (current.contentType !== undefined) {
    headers['content-type'] = current.contentType;
  }
  headers['content-length'] = String(Buffer.byteLength(payload));
  res.writeHead(current.status, headers);
  res.end(payload);
}

// ---- the wrapper ------------------------------------------------------------------------------

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function sendJson(res, status, value) {
  const payload = value === undefined ? '' : JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) });
  res.end(payload);
}

async function readJson(req) {
  const raw = (await readBody(req)).toString('utf8');
  if (raw.trim() === '') return {};
  try {
    return JSON.parse(raw);
  } catch {
    throw new HttpError(400, 'body must be JSON');
  }
}

let accountSeq = 0;

async function issue({ accountId = `user-${++accountSeq}`, scope = 'openid offline_access', clientId = 'basic-client' } = {}) {
  const client = await provider.Client.find(clientId);
  if (!client) throw new HttpError(400, `unknown client ${clientId}`);
  // What an authorization-code exchange would leave behind, without a browser.
  const grant = new provider.Grant({ accountId, clientId });
  grant.addOIDCScope(scope);
  const grantId = await grant.save();
  const fields = { accountId, client, grantId, scope, gty: 'authorization_code' };
  const accessToken = new provider.AccessToken(fields);
  const access_token = await accessToken.save();
  const refresh_token = await new provider.RefreshToken(fields).save();
  return { access_token, refresh_token, expires_in: accessToken.expiration, account_id: accountId };
}

async function control(req, res, path) {
  const route = `${req.method} ${path}`;
  switch (route) {
    case 'POST /__test/issue':
      return sendJson(res, 200, await issue(await readJson(req)));
    case 'GET /__test/calls':
      return sendJson(res, 200, counters);
    case 'GET /__test/requests':
      return sendJson(res, 200, recorded);
    case 'DELETE /__test/requests':
      recorded = [];
      return sendJson(res, 200, {});
    case 'POST /__test/mode':
      setMode(await readJson(req));
      return sendJson(res, 200, {});
    case 'POST /__test/reset':
      modes.token = { mode: 'normal' };
      modes.revocation = { mode: 'normal' };
      counters = emptyCounters();
      recorded = [];
      for (const r of hung) r.destroy();
      hung.clear();
      return sendJson(res, 200, {});
    default:
      throw new HttpError(404, `no test route ${route}`);
  }
}

/** The token and revocation endpoints: recorded, then answered by a failure mode or by oidc-provider. */
async function recordedEndpoint(req, res, path, passThrough) {
  const raw = await readBody(req);
  const form = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  recorded.push({ method: req.method, path, headers: req.headers, form, body: raw.toString('utf8'), receivedAt: Date.now() });
  const endpoint = path === REVOCATION_PATH ? 'revocation' : 'token';
  if (endpoint === 'token') counters.token.total += 1;
  // oidc-provider reads an already consumed body from req.body.
  req.body = raw;
  req.testForm = form;

  const current = takeMode(endpoint);
  switch (current.mode) {
    case 'status':
      counters.injected += 1;
      if (current.delayMs) await sleep(current.delayMs);
      return answerInjected(res, current);
    case 'hang':
      counters.injected += 1;
      hung.add(req.socket);
      req.socket.once('close', () => hung.delete(req.socket));
      return undefined;
    case 'slow':
      await sleep(current.delayMs ?? 0);
      return passThrough(req, res);
    default:
      return passThrough(req, res);
  }
}

const passThrough = provider.callback();

const server = createServer((req, res) => {
  const path = new URL(req.url ?? '/', issuer).pathname;
  const work = async () => {
    if (path.startsWith('/__test/')) return control(req, res, path);
    if (req.method === 'POST' && path === TOKEN_PATH) return recordedEndpoint(req, res, path, passThrough);
    if (req.method === 'POST' && path === REVOCATION_PATH) {
      counters.revocation.total += 1;
      res.once('finish', () => {
        if (res.statusCode === 200) counters.revocation.success += 1;
      });
      return recordedEndpoint(req, res, path, passThrough);
    }
    return passThrough(req, res);
  };
  work().catch((err) => {
    if (!(err instanceof HttpError)) console.error('oidc test server wrapper error', err);
    if (res.headersSent) return res.destroy();
    return sendJson(res, err instanceof HttpError ? err.status : 500, { error: err.message });
  });
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${port}\n`);
});
server.on('error', (err) => {
  console.error(`oidc test server: ${err.message}`);
  process.exit(1);
});

if (flags['exit-with-stdin']) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));

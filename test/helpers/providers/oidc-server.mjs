// A real OAuth 2.0 provider (oidc-provider 9) for tests, run as a child process because
// oidc-provider is ESM-only and jest's CommonJS runtime cannot load it.
//
//   node test/helpers/providers/oidc-server.mjs <port> [--access-ttl <seconds>] [--no-rotation]
//        [--redirect-uri <url>]... [--device-interval <seconds>] [--exit-with-stdin]
//
// Prints `ready <port>` once listening on 127.0.0.1. --exit-with-stdin makes it quit when its
// stdin closes, so a crashed test runner cannot leave it behind.
//
// Grants: authorization code (PKCE S256 required) with a scripted login, refresh, device
// authorization (RFC 8628) and client credentials; tokens can also be issued directly.
//
// A plain node:http server sits in front of provider.callback(): it records every request to the
// token, revocation and device authorization endpoints, can answer them itself in a failure mode,
// answers the interaction pages (the login and consent a user would click through) as the test
// scripted them, and serves test-control routes under /__test/ (JSON in, JSON out). See
// test/helpers/providers/oidc.ts for the typed client.
import { Buffer } from 'node:buffer';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { URL, URLSearchParams } from 'node:url';
import { parseArgs } from 'node:util';
import Provider, { errors } from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const TOKEN_PATH = '/token';
const REVOCATION_PATH = '/token/revocation';
// oidc-provider's default routes.device_authorization and routes.code_verification.
const DEVICE_AUTHORIZATION_PATH = '/device/auth';
const INTERACTION_PATH = /^\/interaction\/([^/]+)$/;
const MAX_BODY_BYTES = 64 * 1024;
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
// The API that cc-client's tokens are for. Without a resource, oidc-provider keeps only the static
// OIDC scopes of a token request (openid, offline_access, email), so api:read would be dropped.
const API_RESOURCE = 'https://api.example.test/';
const API_SCOPES = 'api:read api:write';
const USAGE = 'usage: oidc-server.mjs <port> [--access-ttl <seconds>] [--no-rotation] [--redirect-uri <url>]... '
  + '[--device-interval <seconds>] [--exit-with-stdin]';

function usage(problem) {
  console.error(`${problem}\n${USAGE}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      'access-ttl': { type: 'string', default: '3600' },
      'no-rotation': { type: 'boolean', default: false },
      'redirect-uri': { type: 'string', multiple: true, default: [] },
      'device-interval': { type: 'string' },
      'exit-with-stdin': { type: 'boolean', default: false },
    },
  });
} catch (err) {
  usage(err.message);
}
const { values: flags, positionals } = parsed;
const port = Number(positionals[0]);
const accessTtl = Number(flags['access-ttl']);
if (!Number.isInteger(port) || port <= 0 || port > 65535) usage('port must be an integer in 1-65535');
if (!Number.isInteger(accessTtl) || accessTtl <= 0) usage('--access-ttl must be a positive integer');
// oidc-provider 9 answers no `interval` in the device authorization response (clients then use
// RFC 8628's default of 5 s) and never answers slow_down itself: the flag adds the field.
const deviceInterval = flags['device-interval'] === undefined ? undefined : Number(flags['device-interval']);
if (deviceInterval !== undefined && !(Number.isInteger(deviceInterval) && deviceInterval >= 0)) {
  usage('--device-interval must be a non-negative integer');
}
for (const uri of flags['redirect-uri']) {
  if (!URL.canParse(uri)) usage(`--redirect-uri ${uri} is not a URL`);
}

const issuer = `http://127.0.0.1:${port}`;
const redirectUris = [...new Set(['http://127.0.0.1/callback', ...flags['redirect-uri']])];
const grantTypes = ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT];

// The built-in memory store is an LRU of 1,000 entries: under load, live tokens would vanish.
const store = new LRU({ maxSize: 1_000_000 });

const provider = new Provider(issuer, {
  adapter: (model) => new MemoryAdapter(model, store, 0),
  clients: [
    { client_id: 'basic-client', client_secret: 'basic-secret', token_endpoint_auth_method: 'client_secret_basic', grant_types: grantTypes, redirect_uris: redirectUris },
    { client_id: 'post-client', client_secret: 'post-secret', token_endpoint_auth_method: 'client_secret_post', grant_types: grantTypes, redirect_uris: redirectUris },
    // A machine client: no user, no redirect, no authorization endpoint.
    { client_id: 'cc-client', client_secret: 'cc-secret', token_endpoint_auth_method: 'client_secret_basic', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
  ],
  // `email` as a scope exists only because a claims entry names it.
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // Expiry tests must not get 15 s of grace.
  clockTolerance: 0,
  cookies: { keys: ['oidc-test-server-cookie-key'] },
  // By default tokens without offline_access die with the browser session; a vault keeps them.
  expiresWithSession: () => false,
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true, userCodeInputSource, userCodeConfirmSource, successSource },
    resourceIndicators: {
      enabled: true,
      // Only cc-client defaults to the API: user clients keep audience-less tokens that the userinfo endpoint accepts.
      defaultResource: (_ctx, client, oneOf) => oneOf ?? (client.clientId === 'cc-client' ? API_RESOURCE : undefined),
      getResourceServerInfo: (_ctx, resource) => {
        if (resource !== API_RESOURCE) throw new errors.InvalidTarget();
        return { scope: API_SCOPES, audience: API_RESOURCE, accessTokenFormat: 'opaque', accessTokenTTL: accessTtl };
      },
    },
  },
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub, email: `${sub}@example.test`, email_verified: true }) }),
  // By default refresh tokens come only with offline_access and prompt=consent.
  issueRefreshToken: () => true,
  // oidc-provider 9 knows only S256; this makes a code_challenge mandatory for every client.
  pkce: { required: () => true },
  rotateRefreshToken: !flags['no-rotation'],
  routes: { token: TOKEN_PATH, revocation: REVOCATION_PATH, device_authorization: DEVICE_AUTHORIZATION_PATH },
  ttl: {
    AccessToken: accessTtl,
    ClientCredentials: accessTtl,
    RefreshToken: 14 * 24 * 60 * 60,
    Grant: 14 * 24 * 60 * 60,
    Session: 14 * 24 * 60 * 60,
    Interaction: 60 * 60,
    DeviceCode: 10 * 60,
  },
});

if (deviceInterval !== undefined) {
  // Emitted with the response body before it is sent.
  provider.on('device_authorization.success', (_ctx, body) => {
    body.interval = deviceInterval;
  });
}

// ---- the device pages (/device) ----------------------------------------------------------------
//
// oidc-provider renders them through these three functions; `form` is its own form (xsrf hidden
// field, user_code, confirm). Each page names its state in data-outcome so a test can tell them
// apart without parsing prose: enter-code, confirm-code, approved, denied (the login was denied
// or aborted), code-not-found, code-expired, code-already-used, no-code, error.

const RE_RENDER_OUTCOMES = {
  AbortedError: 'denied',
  NotFoundError: 'code-not-found',
  ExpiredError: 'code-expired',
  AlreadyUsedError: 'code-already-used',
  NoCodeError: 'no-code',
};

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function devicePage(ctx, outcome, content) {
  ctx.type = 'html';
  ctx.body = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Device sign-in: ${outcome}</title></head>
<body><main id="device" data-outcome="${outcome}">
${content}
</main></body></html>`;
}

async function userCodeInputSource(ctx, form, out, err) {
  if (!err) return devicePage(ctx, 'enter-code', `<p>Enter the code displayed on your device</p>\n${form}`);
  const outcome = RE_RENDER_OUTCOMES[err.name] ?? 'error';
  const detail = out ? `${out.error}: ${out.error_description}` : err.message;
  return devicePage(ctx, outcome, `<p id="error" data-error="${escapeHtml(out?.error ?? err.name)}">${escapeHtml(detail)}</p>\n${form}`);
}

async function userCodeConfirmSource(ctx, form, client, _deviceInfo, userCode) {
  return devicePage(ctx, 'confirm-code', `<p>Sign in to <b id="client">${escapeHtml(client.clientId)}</b>? Code <code id="user-code">${escapeHtml(userCode)}</code></p>\n${form}`);
}

async function successSource(ctx) {
  return devicePage(ctx, 'approved', `<p>Signed in to <b id="client">${escapeHtml(ctx.oidc.client.clientId)}</b>; you can close this page.</p>`);
}

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
    interactions: { login: 0, consent: 0, denied: 0 },
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

// ---- failure modes for the token, revocation and device authorization endpoints --------------

const MODES = new Set(['normal', 'status', 'slow', 'hang']);
const ENDPOINTS = new Set(['token', 'revocation', 'device_authorization']);
const normalModes = () => ({ token: { mode: 'normal' }, revocation: { mode: 'normal' }, device_authorization: { mode: 'normal' } });
let modes = normalModes();
const hung = new Set();

function setMode(input) {
  if (!input || !MODES.has(input.mode)) throw new HttpError(400, `mode must be one of ${[...MODES].join(', ')}`);
  const endpoint = input.endpoint ?? 'token';
  if (!ENDPOINTS.has(endpoint)) throw new HttpError(400, `endpoint must be one of ${[...ENDPOINTS].join(', ')}`);
  if (input.grantType !== undefined && (endpoint !== 'token' || typeof input.grantType !== 'string')) {
    throw new HttpError(400, 'grantType is a string, for the token endpoint only');
  }
  if (input.mode === 'status' && !(Number.isInteger(input.status) && input.status >= 100 && input.status <= 599)) {
    throw new HttpError(400, 'mode "status" needs an integer status');
  }
  if (input.times !== undefined && !(Number.isInteger(input.times) && input.times >= 0)) {
    throw new HttpError(400, 'times must be a non-negative integer');
  }
  modes[endpoint] = input.mode === 'normal' ? { mode: 'normal' } : { ...input, remaining: input.times };
}

/**
 * The mode for this request to `endpoint`; counts it against `times`. A mode with a grantType
 * leaves requests of other grant types alone, and does not count them.
 */
function takeMode(endpoint, form) {
  const current = modes[endpoint];
  if (current.mode === 'normal') return current;
  if (current.grantType !== undefined && form.grant_type !== current.grantType) return { mode: 'normal' };
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

// ---- the scripted user: login and consent ------------------------------------------------------

/** What the user does at the next interaction: log in as accountId (default a fresh user-N), or deny. */
let nextLogin = {};

function setNextLogin(input) {
  if (!input || typeof input !== 'object') throw new HttpError(400, 'body must be an object');
  const { accountId, deny } = input;
  if (accountId !== undefined && (typeof accountId !== 'string' || accountId === '')) throw new HttpError(400, 'accountId must be a non-empty string');
  if (deny !== undefined && typeof deny !== 'boolean') throw new HttpError(400, 'deny must be a boolean');
  if (accountId !== undefined && deny) throw new HttpError(400, 'either accountId or deny');
  nextLogin = { accountId, deny: deny === true };
}

/**
 * GET /interaction/:uid, where a real provider shows its login or consent page. oidc-provider
 * asks for login first, then (in a second interaction) for consent; a session that is already
 * logged in goes straight to consent. The scripted choice is used up by the login, or by the first
 * interaction when it is a denial.
 */
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  const finish = (result) => provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });

  if (nextLogin.deny) {
    nextLogin = {};
    counters.interactions.denied += 1;
    return finish({ error: 'access_denied', error_description: 'the user denied access' });
  }
  switch (prompt.name) {
    case 'login': {
      const accountId = nextLogin.accountId ?? `user-${++accountSeq}`;
      nextLogin = {};
      counters.interactions.login += 1;
      return finish({ login: { accountId } });
    }
    case 'consent': {
      counters.interactions.consent += 1;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (!grant) throw new HttpError(400, `grant ${details.grantId} not found`);
      const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
      if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
      if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
      return finish({ consent: { grantId: await grant.save() } });
    }
    default:
      throw new HttpError(400, `no scripted answer to prompt ${prompt.name}`);
  }
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
    case 'POST /__test/login':
      setNextLogin(await readJson(req));
      return sendJson(res, 200, {});
    case 'POST /__test/reset':
      modes = normalModes();
      nextLogin = {};
      counters = emptyCounters();
      recorded = [];
      for (const r of hung) r.destroy();
      hung.clear();
      return sendJson(res, 200, {});
    default:
      throw new HttpError(404, `no test route ${route}`);
  }
}

const RECORDED_ENDPOINTS = { [TOKEN_PATH]: 'token', [REVOCATION_PATH]: 'revocation', [DEVICE_AUTHORIZATION_PATH]: 'device_authorization' };

/** The token, revocation and device authorization endpoints: recorded, then answered by a failure mode or by oidc-provider. */
async function recordedEndpoint(req, res, path, passThrough) {
  const raw = await readBody(req);
  const form = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  recorded.push({ method: req.method, path, headers: req.headers, form, body: raw.toString('utf8'), receivedAt: Date.now() });
  const endpoint = RECORDED_ENDPOINTS[path];
  if (endpoint === 'token') counters.token.total += 1;
  // oidc-provider reads an already consumed body from req.body.
  req.body = raw;
  req.testForm = form;

  const current = takeMode(endpoint, form);
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
    if (req.method === 'GET' && INTERACTION_PATH.test(path)) return interaction(req, res);
    if (req.method === 'POST' && (path === TOKEN_PATH || path === DEVICE_AUTHORIZATION_PATH)) return recordedEndpoint(req, res, path, passThrough);
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
    // oidc-provider's own errors, e.g. interactionDetails without its cookie: SessionNotFound.
    const exposed = err.expose === true && Number.isInteger(err.statusCode);
    if (!(err instanceof HttpError) && !exposed) console.error('oidc test server wrapper error', err);
    if (res.headersSent) return res.destroy();
    if (err instanceof HttpError) return sendJson(res, err.status, { error: err.message });
    if (exposed) return sendJson(res, err.statusCode, { error: err.error, error_description: err.error_description });
    return sendJson(res, 500, { error: err.message });
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

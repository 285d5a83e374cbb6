import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import express from 'express';
import request from 'supertest';
import { GENERATE_COMMAND, OPENAPI_FILE, renderOpenApi } from '../../../src/http/openapi/document';
import { checkedAgainstOpenApi, OpenApiContract, takeViolations } from '../../helpers/openapi-contract';

const committed = () => readFileSync(join(__dirname, '..', '..', '..', OPENAPI_FILE), 'utf8');

test('openapi.yaml is what the route table and its zod schemas generate today', () => {
  const generated = renderOpenApi();
  if (generated !== committed()) throw new Error(`${OPENAPI_FILE} is stale: run \`${GENERATE_COMMAND}\` and commit the result`);
});

test('the document records the version of package.json', () => {
  const { version } = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
  expect(committed()).toContain(`\n  version: ${version}\n`);
});

describe('the response check integration tests rely on', () => {
  const contract = OpenApiContract.load();
  // A fake vault on the real routes of the document, answering what the test tells it to.
  let answer: (res: express.Response) => void = () => undefined;
  const fake = express();
  fake.get('/healthz', (_req, res) => answer(res));
  fake.get('/tokens/:user/:provider', (_req, res) => answer(res));
  fake.get('/not-in-the-document', (_req, res) => answer(res));
  const app = checkedAgainstOpenApi(fake, contract);

  afterEach(() => {
    takeViolations(); // these tests make violations on purpose
  });

  test('passes an answer that matches the document', async () => {
    answer = (res) => res.json({ status: 'ok' });
    await request(app).get('/healthz').expect(200);
    expect(takeViolations()).toEqual([]);
  });

  test('catches a body that does not match its schema', async () => {
    answer = (res) => res.json({ status: 'fine', extra: true });
    await request(app).get('/healthz').expect(200);
    expect(takeViolations()).toEqual([expect.stringMatching(/^GET \/healthz → 200: body /)]);
  });

  test('catches a status the operation does not document', async () => {
    answer = (res) => res.status(418).json({ status: 'ok' });
    await request(app).get('/healthz').expect(418);
    expect(takeViolations()).toEqual(['GET /healthz → 418: the status is not documented for this operation']);
  });

  test('catches an operation the document does not have', async () => {
    answer = (res) => res.json({});
    await request(app).get('/not-in-the-document').expect(200);
    expect(takeViolations()).toEqual(['GET /not-in-the-document → 200: the operation is not in openapi.yaml']);
  });

  test('catches an undocumented content type and a missing required header', async () => {
    answer = (res) => res.status(503).type('text/html').send('<p>down</p>');
    await request(app).get('/tokens/u1/github').expect(503);
    expect(takeViolations()).toEqual([
      'GET /tokens/{user}/{provider} → 503: the required header Retry-After is missing',
      expect.stringMatching(/^GET \/tokens\/\{user\}\/\{provider\} → 503: content type "text\/html; charset=utf-8" is not documented/),
    ]);
  });

  test('checks the token view through its $refs, and header values', async () => {
    const token = { user: 'u1', provider: 'github', version: 3, type: 'oauth2', access_token: 'a', token_type: 'Bearer', expires_at: null, expires_in: null, scope: null };
    answer = (res) => res.set('ETag', '"3"').json(token);
    await request(app).get('/tokens/u1/github').expect(200);
    expect(takeViolations()).toEqual([]);

    answer = (res) => res.set({ ETag: '3', Warning: '199 - "other"' }).json({ ...token, refresh_token: 'r' });
    await request(app).get('/tokens/u1/github').expect(200);
    expect(takeViolations()).toEqual([
      expect.stringMatching(/^GET \/tokens\/\{user\}\/\{provider\} → 200: header ETag: "3" /),
      expect.stringMatching(/^GET \/tokens\/\{user\}\/\{provider\} → 200: header Warning: /),
      expect.stringMatching(/^GET \/tokens\/\{user\}\/\{provider\} → 200: body .*additional properties/),
    ]);
  });
});

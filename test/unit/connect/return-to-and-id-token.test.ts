import { idTokenSubject } from '../../../src/connect/id-token';
import { isAllowedReturnTo, withOutcome } from '../../../src/connect/return-to';
import { loggableUrl } from '../../../src/http/middleware/request-lifecycle';

const ALLOWED = ['https://app.example.com/integrations', 'http://localhost:3000/'];

describe('return_to must match connect.returnTo by origin and path prefix', () => {
  test.each([
    'https://app.example.com/integrations',
    'https://app.example.com/integrations/',
    'https://app.example.com/integrations/github/done?x=1#top',
    'https://APP.example.com:443/integrations/done',
    'http://localhost:3000/',
    'http://localhost:3000/anything/at/all',
  ])('%s is allowed', (url) => {
    expect(isAllowedReturnTo(url, ALLOWED)).toBe(true);
  });

  test.each([
    ['a sibling path sharing the prefix', 'https://app.example.com/integrations-old'],
    ['a parent path', 'https://app.example.com/'],
    ['another scheme', 'http://app.example.com/integrations'],
    ['another port', 'https://app.example.com:8443/integrations'],
    ['a look-alike host', 'https://app.example.com.evil.test/integrations'],
    ['a host with credentials', 'https://user:pw@app.example.com/integrations'],
    ['a bare user before the host', 'https://app.example.com@evil.test/integrations'],
    ['a javascript: URL', 'javascript:alert(1)//https://app.example.com/integrations'],
    ['a protocol-relative URL', '//evil.test/integrations'],
    ['a relative path', '/integrations'],
    ['another port of localhost', 'http://localhost:3001/'],
    ['a dot-dot escape from the prefix', 'https://app.example.com/integrations/../admin'],
  ])('%s is refused: %s', (_what, url) => {
    expect(isAllowedReturnTo(url, ALLOWED)).toBe(false);
  });

  test('nothing is allowed when connect.returnTo is empty', () => {
    expect(isAllowedReturnTo('https://app.example.com/integrations', [])).toBe(false);
  });

  test('the outcome is added to the query, keeping what was there and the fragment', () => {
    expect(withOutcome('https://app.example.com/integrations/done?tab=2#x', { status: 'error', error: 'access_denied' })).toBe(
      'https://app.example.com/integrations/done?tab=2&status=error&error=access_denied#x',
    );
  });
});

function jwt(claims: Record<string, unknown>): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256' })}.${part(claims)}.c2lnbmF0dXJl`;
}

describe('the account id from an ID token received from the token endpoint', () => {
  test('sub, when the audience names the client and the nonce matches', () => {
    expect(idTokenSubject(jwt({ sub: 'acct-1', aud: 'client-a', nonce: 'n1' }), 'client-a', 'n1')).toEqual({ sub: 'acct-1' });
    expect(idTokenSubject(jwt({ sub: 'acct-1', aud: ['other', 'client-a'] }), 'client-a', null)).toEqual({ sub: 'acct-1' });
  });

  test.each([
    ['another client', jwt({ sub: 'acct-1', aud: 'client-b', nonce: 'n1' }), 'n1'],
    ['another flow (nonce)', jwt({ sub: 'acct-1', aud: 'client-a', nonce: 'n2' }), 'n1'],
    ['no nonce when one was sent', jwt({ sub: 'acct-1', aud: 'client-a' }), 'n1'],
    ['no subject', jwt({ aud: 'client-a', nonce: 'n1' }), 'n1'],
    ['not a JWT', 'opaque-token', 'n1'],
    ['claims that are not JSON', 'a.bm90IGpzb24.c', 'n1'],
  ])('refused for %s', (_what, token, nonce) => {
    expect(idTokenSubject(token, 'client-a', nonce)).toEqual({ error: expect.any(String) });
  });
});

describe('request log URLs', () => {
  test('query values other than min_ttl and status are redacted', () => {
    expect(loggableUrl('/callback/google?code=abc&state=cs_x.secret&iss=https%3A%2F%2Fidp')).toBe('/callback/google?code=%5Bredacted%5D&state=%5Bredacted%5D&iss=%5Bredacted%5D');
    expect(loggableUrl('/tokens/u1/github?min_ttl=60')).toBe('/tokens/u1/github?min_ttl=60');
    expect(loggableUrl('/tokens/u1/github')).toBe('/tokens/u1/github');
  });
});

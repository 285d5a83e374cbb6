import { createHmac, generateKeyPairSync, verify } from 'node:crypto';
import { InvalidRequestError } from '../../../src/errors';
import {
  baseStringUri,
  newNonce,
  normalizeParameters,
  percentEncode,
  signatureBaseString,
  signRequest,
  type OAuth1Client,
  type OAuth1Request,
  type OAuth1SignOptions,
} from '../../../src/providers/oauth1/signature';
import { Secret } from '../../../src/secret';

/**
 * RFC 5849 signing against published vectors (the RFC's own examples, OAuth Core 1.0 Appendix A
 * and Twitter's "Creating a signature" guide), then the edge cases those vectors do not reach.
 * The expected strings are copied from the published texts, never from this implementation.
 */

/** Splits a published vector printed across lines back into one string. */
const joined = (...lines: string[]) => lines.join('');

const client = (overrides: Partial<OAuth1Client> = {}): OAuth1Client => ({
  consumerKey: 'ck-unit',
  consumerSecret: new Secret('consumer secret &+/'),
  signatureMethod: 'HMAC-SHA1',
  includeVersion: true,
  ...overrides,
});

const signing = (overrides: Partial<OAuth1SignOptions> = {}): OAuth1SignOptions => ({
  token: new Secret('token-unit'),
  tokenSecret: new Secret('token secret =%'),
  nonce: 'nonce-unit',
  timestamp: '1700000000',
  ...overrides,
});

/** The base string a request would be signed over, through the whole signRequest path. */
const baseOf = (request: OAuth1Request, options: Partial<OAuth1SignOptions> = {}, clientOverrides: Partial<OAuth1Client> = {}) =>
  signRequest(client(clientOverrides), request, signing(options)).baseString;

/** The (decoded) parameters of an Authorization header, in order. */
function headerParameters(authorization: string): [string, string][] {
  expect(authorization.startsWith('OAuth ')).toBe(true);
  return authorization
    .slice('OAuth '.length)
    .split(', ')
    .map((item) => {
      const match = /^([^=]+)="([^"]*)"$/.exec(item);
      expect(match).not.toBeNull();
      return [decodeURIComponent(match![1]!), decodeURIComponent(match![2]!)];
    });
}

describe('published vectors', () => {
  const photos: OAuth1Client = {
    consumerKey: 'dpf43f3p2l4k3l03',
    consumerSecret: new Secret('kd94hf93k423kf44'),
    signatureMethod: 'HMAC-SHA1',
    includeVersion: false,
  };
  const photosToken = { token: new Secret('nnch734d00sl2jdk'), tokenSecret: new Secret('pfkkdhi9sl3r4s00') };

  test('RFC 5849 §1.2: the photos request signs to MdpQcU8iPSUjWoN/UDMsK2sui9I=, with realm="Photos" in the header only', () => {
    const signed = signRequest(
      photos,
      { method: 'GET', url: 'http://photos.example.net/photos?file=vacation.jpg&size=original' },
      { ...photosToken, nonce: 'chapoH', timestamp: '137131202', realm: 'Photos' },
    );

    expect(signed.baseString).toBe(
      joined(
        'GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26',
        'oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26oau',
        'th_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131202%26oau',
        'th_token%3Dnnch734d00sl2jdk%26size%3Doriginal',
      ),
    );
    expect(signed.signature).toBe('MdpQcU8iPSUjWoN/UDMsK2sui9I=');
    expect(signed.authorization).toBe(
      'OAuth realm="Photos", oauth_consumer_key="dpf43f3p2l4k3l03", oauth_nonce="chapoH", ' +
        'oauth_signature="MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D", oauth_signature_method="HMAC-SHA1", ' +
        'oauth_timestamp="137131202", oauth_token="nnch734d00sl2jdk"',
    );
  });

  test('OAuth Core 1.0 Appendix A.5: the same photos request with oauth_version=1.0 signs to tR3+Ty81lMeYAr/Fid0kMTYa/WM=', () => {
    const signed = signRequest(
      { ...photos, includeVersion: true },
      { method: 'GET', url: 'http://photos.example.net/photos?file=vacation.jpg&size=original' },
      { ...photosToken, nonce: 'kllo9940pd9333jh', timestamp: '1191242096' },
    );

    expect(signed.baseString).toBe(
      joined(
        'GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26oauth_consumer_key%3Ddpf43f3p2l4k3l03',
        '%26oauth_nonce%3Dkllo9940pd9333jh%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1191242096',
        '%26oauth_token%3Dnnch734d00sl2jdk%26oauth_version%3D1.0%26size%3Doriginal',
      ),
    );
    expect(signed.signature).toBe('tR3+Ty81lMeYAr/Fid0kMTYa/WM=');
  });

  describe('RFC 5849 §3.4.1.1: POST /request?b5=%3D%253D&a3=a&c%40=&a2=r%20b with the body c2&a3=2+q', () => {
    const url = 'http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b';
    const protocol: [string, string][] = [
      ['oauth_consumer_key', '9djdj82h48djs9d2'],
      ['oauth_token', 'kkk9d7dh3k39sjv7'],
      ['oauth_signature_method', 'HMAC-SHA1'],
      ['oauth_timestamp', '137131201'],
      ['oauth_nonce', '7d8f3e4a'],
    ];
    const expectedBaseString = joined(
      'POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q',
      '%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_',
      'key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m',
      'ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk',
      '9d7dh3k39sjv7',
    );

    test('§3.4.1.3.2: the normalized parameters', () => {
      // §3.4.1.3.1's table: the query decoded, the body decoded ("+" is a space), realm and oauth_signature left out.
      const decoded: [string, string][] = [
        ['b5', '=%3D'],
        ['a3', 'a'],
        ['c@', ''],
        ['a2', 'r b'],
        ...protocol,
        ['c2', ''],
        ['a3', '2 q'],
      ];
      expect(normalizeParameters(decoded)).toBe(
        joined(
          'a2=r%20b&a3=2%20q&a3=a&b5=%3D%253D&c%40=&c2=&oauth_consumer_key=9dj',
          'dj82h48djs9d2&oauth_nonce=7d8f3e4a&oauth_signature_method=HMAC-SHA1',
          '&oauth_timestamp=137131201&oauth_token=kkk9d7dh3k39sjv7',
        ),
      );
    });

    test('signatureBaseString parses the query itself and merges the form and protocol parameters', () => {
      expect(signatureBaseString('POST', url, [['c2', ''], ['a3', '2 q'], ...protocol])).toBe(expectedBaseString);
    });

    test('signatureBaseString leaves out an oauth_signature, as §3.4.1.3.1 says', () => {
      expect(signatureBaseString('POST', url, [['c2', ''], ['a3', '2 q'], ...protocol, ['oauth_signature', 'bYT5CMsGcbgUdFHObYMEfcx6bsw=']])).toBe(
        expectedBaseString,
      );
    });

    test('signRequest with form { c2: "", a3: "2 q" } and no oauth_version gives the same base string', () => {
      const signed = signRequest(
        { consumerKey: '9djdj82h48djs9d2', consumerSecret: new Secret('unpublished'), signatureMethod: 'HMAC-SHA1', includeVersion: false },
        { method: 'post', url, form: { c2: '', a3: '2 q' } },
        { token: new Secret('kkk9d7dh3k39sjv7'), tokenSecret: null, nonce: '7d8f3e4a', timestamp: '137131201', realm: 'Example' },
      );
      expect(signed.baseString).toBe(expectedBaseString);
      expect(headerParameters(signed.authorization)[0]).toEqual(['realm', 'Example']);
    });
  });

  test('RFC 5849 §3.4.1.2: the two base string URI examples', () => {
    expect(baseStringUri('HTTP://EXAMPLE.COM:80/r%20v/X?id=123')).toBe('http://example.com/r%20v/X');
    expect(baseStringUri('https://www.example.net:8080/?q=1')).toBe('https://www.example.net:8080/');
  });

  test('Twitter "Creating a signature": POST statuses/update.json signs to hCtSmYh+iHYCEqBWrE7C7hYmtUk=', () => {
    const signed = signRequest(
      {
        consumerKey: 'xvz1evFS4wEEPTGEFPHBog',
        consumerSecret: new Secret('kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw'),
        signatureMethod: 'HMAC-SHA1',
        includeVersion: true,
      },
      {
        method: 'POST',
        url: 'https://api.twitter.com/1.1/statuses/update.json?include_entities=true',
        form: { status: 'Hello Ladies + Gentlemen, a signed OAuth request!' },
      },
      {
        token: new Secret('370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb'),
        tokenSecret: new Secret('LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE'),
        nonce: 'kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg',
        timestamp: '1318622958',
      },
    );

    expect(signed.baseString).toBe(
      joined(
        'POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26',
        'oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26',
        'oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26',
        'oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26',
        'status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521',
      ),
    );
    expect(signed.signature).toBe('hCtSmYh+iHYCEqBWrE7C7hYmtUk=');
    expect(signed.authorization).toBe(
      'OAuth oauth_consumer_key="xvz1evFS4wEEPTGEFPHBog", oauth_nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", ' +
        'oauth_signature="hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D", oauth_signature_method="HMAC-SHA1", oauth_timestamp="1318622958", ' +
        'oauth_token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb", oauth_version="1.0"',
    );
  });
});

describe('percentEncode (RFC 5849 §3.6)', () => {
  test('keeps only A-Z a-z 0-9 - . _ ~', () => {
    expect(percentEncode('AZaz09-._~')).toBe('AZaz09-._~');
    expect(percentEncode(' +/?&=:@$,;#%"<>[]{}|\\^`')).toBe('%20%2B%2F%3F%26%3D%3A%40%24%2C%3B%23%25%22%3C%3E%5B%5D%7B%7D%7C%5C%5E%60');
  });

  test("encodes !*'() too, which encodeURIComponent leaves alone", () => {
    expect(percentEncode("!*'()")).toBe('%21%2A%27%28%29');
  });

  test('encodes UTF-8 bytes with upper-case hex', () => {
    expect(percentEncode('café')).toBe('caf%C3%A9');
    expect(percentEncode('😀')).toBe('%F0%9F%98%80');
    expect(percentEncode('\u00ff\n')).toBe('%C3%BF%0A');
  });

  test('refuses a lone surrogate, which has no UTF-8 form', () => {
    expect(() => percentEncode('\ud800')).toThrow(InvalidRequestError);
  });
});

describe('the base string URI (§3.4.1.2)', () => {
  test('lower-cases scheme and host and keeps the case of the path', () => {
    expect(baseStringUri('HTTPS://Api.Example.COM/Photos/Vacation.JPG')).toBe('https://api.example.com/Photos/Vacation.JPG');
    expect(baseOf({ method: 'GET', url: 'HtTp://EXAMPLE.com/A/b' })).toMatch(/^GET&http%3A%2F%2Fexample.com%2FA%2Fb&/);
  });

  test('drops :80 for http and :443 for https, keeps every other port', () => {
    expect(baseStringUri('http://example.com:80/a')).toBe('http://example.com/a');
    expect(baseStringUri('https://example.com:443/a')).toBe('https://example.com/a');
    expect(baseStringUri('http://example.com:8080/a')).toBe('http://example.com:8080/a');
    expect(baseStringUri('http://example.com:443/a')).toBe('http://example.com:443/a');
    expect(baseStringUri('https://example.com:80/a')).toBe('https://example.com:80/a');
  });

  test('an empty path becomes "/"; the query and the fragment are dropped', () => {
    expect(baseStringUri('https://example.com')).toBe('https://example.com/');
    expect(baseStringUri('https://example.com?x=1#top')).toBe('https://example.com/');
    expect(baseStringUri('https://example.com/a/b?x=1#frag')).toBe('https://example.com/a/b');
  });

  test('a fragment is not signed: with or without it, the base string is the same', () => {
    expect(baseOf({ method: 'GET', url: 'https://example.com/a?x=1#section-2' })).toBe(baseOf({ method: 'GET', url: 'https://example.com/a?x=1' }));
  });
});

describe('parameters', () => {
  const parametersOf = (request: OAuth1Request, clientOverrides: Partial<OAuth1Client> = {}) => {
    const parts = baseOf(request, {}, clientOverrides).split('&');
    expect(parts).toHaveLength(3);
    return decodeURIComponent(parts[2]!);
  };

  test('"+" and "%20" in the query both mean a space', () => {
    const plus = parametersOf({ method: 'GET', url: 'https://example.com/?q=a+b' });
    const pct = parametersOf({ method: 'GET', url: 'https://example.com/?q=a%20b' });
    expect(plus).toContain('q=a%20b');
    expect(plus).toBe(pct);
    // An encoded plus is a real "+".
    expect(parametersOf({ method: 'GET', url: 'https://example.com/?q=a%2Bb' })).toContain('q=a%2Bb');
  });

  test('repeated names are all kept, sorted by value, across the query and the form', () => {
    const parameters = parametersOf({ method: 'POST', url: 'https://example.com/?tag=zeta&tag=alpha', form: { tag: ['mid', 'Beta'] } });
    expect(parameters).toMatch(/&tag=Beta&tag=alpha&tag=mid&tag=zeta$/);
  });

  test('names sort before values, by encoded bytes ("c%40" < "c2" < "ca")', () => {
    expect(normalizeParameters([['ca', '1'], ['c2', '1'], ['c@', '1'], ['a', 'z'], ['a', 'Z'], ['a', '']])).toBe('a=&a=Z&a=z&c%40=1&c2=1&ca=1');
  });

  test('empty values are signed as name=', () => {
    const parameters = parametersOf({ method: 'POST', url: 'https://example.com/?flag&empty=', form: { blank: '' } });
    expect(parameters).toMatch(/^blank=&empty=&flag=&oauth_consumer_key=/);
  });

  test('UTF-8 names and values are encoded byte by byte', () => {
    const parameters = parametersOf({ method: 'POST', url: 'https://example.com/?city=caf%C3%A9', form: { 'mood😀': 'très 😀' } });
    expect(parameters).toContain('city=caf%C3%A9');
    expect(parameters).toContain('mood%F0%9F%98%80=tr%C3%A8s%20%F0%9F%98%80');
  });

  test("reserved characters !*'() in values are encoded", () => {
    expect(parametersOf({ method: 'POST', url: 'https://example.com/', form: { text: "hi! (it's *me*)" } })).toContain(
      'text=hi%21%20%28it%27s%20%2Ame%2A%29',
    );
  });

  test('includeVersion: false leaves oauth_version out of the base string and the header', () => {
    const signed = signRequest(client({ includeVersion: false }), { method: 'GET', url: 'https://example.com/' }, signing());
    expect(signed.baseString).not.toContain('oauth_version');
    expect(signed.authorization).not.toContain('oauth_version');
    const versioned = signRequest(client({ includeVersion: true }), { method: 'GET', url: 'https://example.com/' }, signing());
    expect(versioned.baseString).toContain('oauth_version%3D1.0');
    expect(headerParameters(versioned.authorization)).toContainEqual(['oauth_version', '1.0']);
  });

  test('no token: oauth_token is neither signed nor sent (a request-token call, §2.1)', () => {
    const signed = signRequest(client(), { method: 'POST', url: 'https://example.com/oauth/request_token' }, signing({ token: null, tokenSecret: null }));
    expect(signed.baseString).not.toContain('oauth_token');
    expect(signed.authorization).not.toContain('oauth_token');
  });

  test('the method is upper-cased', () => {
    expect(baseOf({ method: 'delete', url: 'https://example.com/x' })).toMatch(/^DELETE&/);
  });
});

describe('signature methods', () => {
  const request: OAuth1Request = { method: 'POST', url: 'https://api.example.com/1/items?view=full', form: { name: 'café ☕' } };

  test('HMAC-SHA256 is HMAC with SHA-256 over the base string, keyed with encode(cs)&encode(ts)', () => {
    const signed = signRequest(client({ signatureMethod: 'HMAC-SHA256' }), request, signing());

    expect(signed.baseString).toBe(
      joined(
        'POST&https%3A%2F%2Fapi.example.com%2F1%2Fitems&name%3Dcaf%25C3%25A9%2520%25E2%2598%2595%26oauth_consumer_key%3Dck-unit',
        '%26oauth_nonce%3Dnonce-unit%26oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D1700000000',
        '%26oauth_token%3Dtoken-unit%26oauth_version%3D1.0%26view%3Dfull',
      ),
    );
    const expected = createHmac('sha256', 'consumer%20secret%20%26%2B%2F&token%20secret%20%3D%25').update(signed.baseString).digest('base64');
    expect(signed.signature).toBe(expected);
    expect(Buffer.from(signed.signature, 'base64')).toHaveLength(32);
  });

  describe('RSA-SHA1', () => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pkcs8 = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const pkcs1 = pair.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();

    test.each([
      ['PKCS#8', pkcs8],
      ['PKCS#1', pkcs1],
    ])('a %s private key signs; the matching public key verifies the base string (RSASSA-PKCS1-v1_5, SHA-1)', (_, pem) => {
      const signed = signRequest(client({ signatureMethod: 'RSA-SHA1', privateKey: new Secret(pem) }), request, signing());

      expect(signed.baseString).toContain('oauth_signature_method%3DRSA-SHA1');
      expect(verify('sha1', Buffer.from(signed.baseString), pair.publicKey, Buffer.from(signed.signature, 'base64'))).toBe(true);
      expect(verify('sha1', Buffer.from(`${signed.baseString}x`), pair.publicKey, Buffer.from(signed.signature, 'base64'))).toBe(false);
      // PKCS#1 v1.5 is deterministic: the same request signs the same.
      expect(signRequest(client({ signatureMethod: 'RSA-SHA1', privateKey: new Secret(pem) }), request, signing()).signature).toBe(signed.signature);
    });

    test('without a usable RSA private key: InvalidRequestError that quotes no key material', () => {
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const truncated = pkcs8.slice(0, 200);
      for (const privateKey of [undefined, new Secret('not a key'), new Secret(truncated), new Secret(publicPem), new Secret(ec)]) {
        const error = caught(() => signRequest(client({ signatureMethod: 'RSA-SHA1', ...(privateKey ? { privateKey } : {}) }), request, signing()));
        expect(error).toBeInstanceOf(InvalidRequestError);
        expect(error.message).toMatch(/RSA-SHA1/);
        for (const line of [...truncated.split('\n'), ...ec.split('\n')].filter((l) => l.length > 20)) expect(error.message).not.toContain(line);
      }
    });
  });

  test('PLAINTEXT: the signature is encode(cs)&encode(ts), and cs& without a token', () => {
    const withToken = signRequest(client({ signatureMethod: 'PLAINTEXT' }), request, signing());
    expect(withToken.signature).toBe('consumer%20secret%20%26%2B%2F&token%20secret%20%3D%25');
    expect(withToken.baseString).toBe('');
    // In the header the signature is encoded once more (§3.5.1).
    expect(withToken.authorization).toContain('oauth_signature="consumer%2520secret%2520%2526%252B%252F%26token%2520secret%2520%253D%2525"');

    const withoutToken = signRequest(client({ signatureMethod: 'PLAINTEXT' }), request, signing({ token: null, tokenSecret: null }));
    expect(withoutToken.signature).toBe('consumer%20secret%20%26%2B%2F&');
    expect(signRequest(client({ signatureMethod: 'PLAINTEXT', consumerSecret: new Secret('kd94hf93k423kf44') }), request, signing({ tokenSecret: null })).signature).toBe(
      'kd94hf93k423kf44&',
    );
  });
});

describe('the Authorization header (§3.5.1)', () => {
  test('realm comes first and is not signed', () => {
    const withRealm = signRequest(client(), { method: 'GET', url: 'https://example.com/' }, signing({ realm: 'Photos "Album"' }));
    const without = signRequest(client(), { method: 'GET', url: 'https://example.com/' }, signing());

    expect(withRealm.authorization.startsWith('OAuth realm="Photos%20%22Album%22", oauth_consumer_key=')).toBe(true);
    expect(withRealm.baseString).toBe(without.baseString);
    expect(withRealm.signature).toBe(without.signature);
  });

  test('every protocol parameter once, sorted by name, values percent-encoded and quoted', () => {
    const signed = signRequest(client({ consumerKey: 'key with space' }), { method: 'GET', url: 'https://example.com/' }, signing({ nonce: 'n/+=' }));
    expect(signed.authorization).toMatch(/^OAuth oauth_consumer_key="key%20with%20space", oauth_nonce="n%2F%2B%3D", oauth_signature="[A-Za-z0-9%]+", /);
    expect(headerParameters(signed.authorization).map(([name]) => name)).toEqual([
      'oauth_consumer_key',
      'oauth_nonce',
      'oauth_signature',
      'oauth_signature_method',
      'oauth_timestamp',
      'oauth_token',
      'oauth_version',
    ]);
    expect(Object.fromEntries(headerParameters(signed.authorization)).oauth_signature).toBe(signed.signature);
  });

  test('extra parameters (oauth_callback, oauth_verifier) are signed and sent in the header', () => {
    const extra = { oauth_callback: 'https://app.example/cb?state=a b', oauth_verifier: 'hfdp7dh39dks9884' };
    const signed = signRequest(client(), { method: 'POST', url: 'https://example.com/oauth/access_token' }, signing({ extra }));

    expect(signed.baseString).toContain(percentEncode('oauth_callback=https%3A%2F%2Fapp.example%2Fcb%3Fstate%3Da%20b'));
    expect(signed.baseString).toContain(percentEncode('oauth_verifier=hfdp7dh39dks9884'));
    expect(headerParameters(signed.authorization)).toEqual(expect.arrayContaining([['oauth_callback', extra.oauth_callback], ['oauth_verifier', extra.oauth_verifier]]));
    expect(signed.signature).not.toBe(signRequest(client(), { method: 'POST', url: 'https://example.com/oauth/access_token' }, signing()).signature);
  });
});

/** Runs fn, which must throw; returns what it threw. */
function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

describe('invalid input: InvalidRequestError, and the message never carries a secret', () => {
  const SECRETS = ['consumer-secret-XYZ', 'token-ABC-123', 'token-secret-QRS', 'hunter2'];
  const secretClient = client({ consumerSecret: new Secret(SECRETS[0]!) });
  const secretOptions = signing({ token: new Secret(SECRETS[1]!), tokenSecret: new Secret(SECRETS[2]!) });

  test.each<[string, Partial<OAuth1Client>, OAuth1Request, Partial<OAuth1SignOptions>]>([
    ['a relative URL', {}, { method: 'GET', url: '/photos?x=1' }, {}],
    ['not a URL at all', {}, { method: 'GET', url: 'token-ABC-123' }, {}],
    ['an ftp URL', {}, { method: 'GET', url: 'ftp://example.com/file' }, {}],
    ['a URL with user:password', {}, { method: 'GET', url: 'https://me:hunter2@example.com/' }, {}],
    ['a URL with a user name only', {}, { method: 'GET', url: 'https://token-ABC-123@example.com/' }, {}],
    ['a form value that is a number', {}, { method: 'POST', url: 'https://example.com/', form: { n: 5 } as unknown as Record<string, string> }, {}],
    ['a form value that is null', {}, { method: 'POST', url: 'https://example.com/', form: { n: null } as unknown as Record<string, string> }, {}],
    ['a form array holding a non-string', {}, { method: 'POST', url: 'https://example.com/', form: { n: ['a', {}] } as unknown as Record<string, string[]> }, {}],
    ['an oauth_ parameter in the query', {}, { method: 'GET', url: 'https://example.com/?oauth_token=token-ABC-123' }, {}],
    ['an oauth_ parameter in the form', {}, { method: 'POST', url: 'https://example.com/', form: { oauth_verifier: 'hunter2' } }, {}],
    ['an extra parameter that replaces oauth_token', {}, { method: 'GET', url: 'https://example.com/' }, { extra: { oauth_token: 'hunter2' } }],
    ['an extra oauth_signature', {}, { method: 'GET', url: 'https://example.com/' }, { extra: { oauth_signature: 'hunter2' } }],
    ['a lone surrogate in a value', {}, { method: 'POST', url: 'https://example.com/', form: { a: '\ud800' } }, {}],
    ['a timestamp that is not whole seconds', {}, { method: 'GET', url: 'https://example.com/' }, { timestamp: '1700000000.5' }],
    ['an empty nonce', {}, { method: 'GET', url: 'https://example.com/' }, { nonce: '' }],
    ['a method with a space', {}, { method: 'GET X', url: 'https://example.com/' }, {}],
    ['an unknown signature method', { signatureMethod: 'HMAC-MD5' as never }, { method: 'GET', url: 'https://example.com/' }, {}],
    ['RSA-SHA1 without a private key', { signatureMethod: 'RSA-SHA1' }, { method: 'GET', url: 'https://example.com/' }, {}],
  ])('%s', (_, clientOverrides, request, options) => {
    const error = caught(() => signRequest({ ...secretClient, ...clientOverrides }, request, { ...secretOptions, ...options }));
    expect(error).toBeInstanceOf(InvalidRequestError);
    expect((error as InvalidRequestError).status).toBe(400);
    for (const secret of SECRETS) expect(error.message).not.toContain(secret);
  });

  test('the lower-level functions refuse bad URLs the same way', () => {
    expect(() => baseStringUri('example.com/x')).toThrow(InvalidRequestError);
    expect(() => baseStringUri('https://u:p@example.com/')).toThrow(InvalidRequestError);
    expect(() => signatureBaseString('GET', 'mailto:someone@example.com', [])).toThrow(InvalidRequestError);
  });
});

describe('newNonce', () => {
  test('32 characters of [A-Za-z0-9], different every time', () => {
    const nonces = Array.from({ length: 200 }, () => newNonce());
    for (const nonce of nonces) expect(nonce).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(new Set(nonces).size).toBe(nonces.length);
    // Across 6,400 characters every one of the 62 shows up.
    expect(new Set(nonces.join('')).size).toBe(62);
  });
});

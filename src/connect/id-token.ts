/**
 * The claims of an ID token received straight from the token endpoint. Its signature is not
 * checked: OpenID Connect Core §3.1.3.7 lets a client that got the token over TLS from the token
 * endpoint, with its own client authentication, rely on TLS instead. The audience and the nonce
 * are checked, so a token minted for another client or another flow is refused.
 */
export function idTokenSubject(idToken: string, clientId: string, nonce: string | null): { sub: string } | { error: string } {
  const parts = idToken.split('.');
  if (parts.length !== 3) return { error: 'the ID token is not a JWT' };
  let claims: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { error: 'the ID token has no claims' };
    claims = parsed as Record<string, unknown>;
  } catch {
    return { error: 'the ID token has no readable claims' };
  }
  const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audience.includes(clientId)) return { error: 'the ID token is for another client' };
  if (nonce !== null && claims.nonce !== nonce) return { error: 'the ID token nonce does not match the flow' };
  if (typeof claims.sub !== 'string' || claims.sub === '') return { error: 'the ID token has no subject' };
  return { sub: claims.sub };
}

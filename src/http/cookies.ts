import type { Request, Response } from 'express';
import type { BrowserAnswer } from '../connect/connect-service';

/** The request's cookies (RFC 6265 §5.4 Cookie header), first value of each name. */
export function readCookies(req: Request): Record<string, string> {
  const cookies: Record<string, string> = {};
  for (const pair of (req.get('cookie') ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at <= 0) continue;
    const name = pair.slice(0, at).trim();
    if (!(name in cookies)) cookies[name] = pair.slice(at + 1).trim();
  }
  return cookies;
}

/**
 * Sends the browser on with a 302, setting or clearing the flow's binding cookie (HttpOnly,
 * SameSite=Lax so the provider's top-level redirect back carries it). No Referer leaves: the
 * URLs of these pages carry the state and the code.
 */
export function sendBrowser(res: Response, answer: BrowserAnswer): void {
  const { cookie } = answer;
  const options = { httpOnly: true, sameSite: 'lax' as const, secure: cookie.secure, path: cookie.path };
  if (cookie.value === null) res.clearCookie(cookie.name, options);
  else res.cookie(cookie.name, cookie.value, { ...options, maxAge: cookie.maxAgeSeconds * 1000 });
  res.set('Referrer-Policy', 'no-referrer').redirect(302, answer.redirect);
}

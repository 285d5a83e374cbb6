import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { Secret } from '../secret';

/**
 * Checks of `server.tls` done when the configuration is loaded, so a bad PEM or a key that
 * belongs to another certificate is a config error naming the field, not a failed listen or a
 * handshake that fails for every client. Messages never quote the PEM text: `key` is a secret,
 * and a message says what is wrong, not what was given.
 */

export interface TlsMaterial {
  /** The server certificate, then any intermediates (PEM). */
  cert: string;
  key: Secret;
  /** The CA certificates client certificates are verified against (PEM). */
  ca?: string | undefined;
}

export interface TlsMaterialIssue {
  field: 'cert' | 'key' | 'ca';
  message: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM bundle; throws with a message about what is wrong. */
export function parseCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    if (/PRIVATE KEY-----/.test(pem)) throw new Error('holds a private key, not a certificate');
    throw new Error('holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  }
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new Error(`certificate ${i + 1} of ${blocks.length} does not parse`);
    }
  });
}

export function checkTlsMaterial(material: TlsMaterial): TlsMaterialIssue[] {
  const issues: TlsMaterialIssue[] = [];
  let leaf: X509Certificate | undefined;
  try {
    leaf = parseCertificates(material.cert)[0];
  } catch (err) {
    issues.push({ field: 'cert', message: (err as Error).message });
  }
  let key: KeyObject | undefined;
  // OpenSSL's error for a key without its passphrase varies by version; the PEM header does not.
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4,ENCRYPTED/.test(material.key.reveal())) {
    issues.push({ field: 'key', message: 'an encrypted private key is not supported; give it unencrypted, from a { file } readable only by the vault' });
  } else {
    try {
      key = createPrivateKey(material.key.reveal());
    } catch {
      issues.push({ field: 'key', message: 'is not a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA/EC PRIVATE KEY-----)' });
    }
  }
  if (leaf && key && !leaf.checkPrivateKey(key)) {
    issues.push({ field: 'key', message: `does not belong to the certificate in server.tls.cert (subject ${leaf.subject.replaceAll('\n', ', ')})` });
  }
  if (material.ca !== undefined) {
    try {
      parseCertificates(material.ca);
    } catch (err) {
      issues.push({ field: 'ca', message: (err as Error).message });
    }
  }
  if (issues.length === 0) {
    // What node:https will do with them; catches what the checks above do not know about.
    try {
      createSecureContext({ cert: material.cert, key: material.key.reveal(), ...(material.ca ? { ca: material.ca } : {}) });
    } catch (err) {
      issues.push({ field: 'cert', message: `OpenSSL refuses the certificate and key (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
    }
  }
  return issues;
}

/** Warnings about a loadable but doubtful certificate: expired, or not valid yet. */
export function tlsCertificateWarnings(cert: string, now: Date): string[] {
  let leaf: X509Certificate | undefined;
  try {
    leaf = parseCertificates(cert)[0];
  } catch {
    return [];
  }
  if (!leaf) return [];
  if (new Date(leaf.validTo) < now) return [`server.tls.cert: the certificate expired on ${new Date(leaf.validTo).toISOString()}; clients will refuse it`];
  if (new Date(leaf.validFrom) > now) return [`server.tls.cert: the certificate is valid only from ${new Date(leaf.validFrom).toISOString()}; clients will refuse it until then`];
  return [];
}

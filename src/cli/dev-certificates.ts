import { generateKeyPairSync } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

/**
 * Certificates for local TLS and mTLS (`token-vault dev-certs`): a throw-away CA, a server
 * certificate for the given hosts and one client certificate per caller. node-forge builds the
 * X.509 structures, which node:crypto cannot do; node:crypto makes the RSA keys (native and
 * fast). This is the only place node-forge is used (DESIGN §6).
 */

export interface DevCertificateOptions {
  /** DNS names and IP addresses of the server certificate; the first is also its CN. */
  hosts: string[];
  /** One client certificate per name, with subject CN=<name> and nothing else. */
  clients: string[];
  days: number;
  now: Date;
  randomBytes(size: number): Buffer;
}

export interface IssuedCertificate {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
}

export interface DevCertificates {
  /** The CA's private key is not kept: nothing needs it once the certificates are issued. */
  ca: { certPem: string; subject: string };
  server: IssuedCertificate;
  clients: (IssuedCertificate & { name: string })[];
}

/** Backdated a little, so a client whose clock is slightly behind accepts a certificate made just now. */
const CLOCK_SKEW_MS = 5 * 60_000;

type Attributes = forge.pki.CertificateField[];
type KeyPair = { privatePem: string; publicKey: forge.pki.PublicKey; privateKey: forge.pki.rsa.PrivateKey };

export function generateDevCertificates(options: DevCertificateOptions): DevCertificates {
  const caKeys = keyPair();
  const caName = `token-vault dev CA ${options.randomBytes(4).toString('hex')}`;
  const caSubject: Attributes = [utf8('commonName', caName), utf8('organizationName', 'token-vault dev')];
  const ca = certificate(options, caKeys.publicKey, caSubject, caSubject, [
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());
  const caKeyId = ca.generateSubjectKeyIdentifier().getBytes();

  const issue = (subject: Attributes, extensions: object[]): IssuedCertificate => {
    const keys = keyPair();
    const cert = certificate(options, keys.publicKey, subject, caSubject, [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: caKeyId },
      ...extensions,
    ]);
    cert.sign(caKeys.privateKey, forge.md.sha256.create());
    return { certPem: toPem(cert), keyPem: keys.privatePem };
  };

  const server = issue(
    [utf8('commonName', options.hosts[0] ?? 'localhost')],
    [
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: options.hosts.map((host) => (isIP(host) ? { type: 7, ip: host } : { type: 2, value: host })) },
    ],
  );
  const clients = options.clients.map((name) => ({
    name,
    ...issue([utf8('commonName', name)], [
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ]),
  }));
  return { ca: { certPem: toPem(ca), subject: `CN=${caName},O=token-vault dev` }, server, clients };
}

function keyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privatePem: privateKey, publicKey: forge.pki.publicKeyFromPem(publicKey), privateKey: forge.pki.privateKeyFromPem(privateKey) };
}

function certificate(options: DevCertificateOptions, publicKey: forge.pki.PublicKey, subject: Attributes, issuer: Attributes, extensions: object[]): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber(options.randomBytes(16));
  cert.validity.notBefore = new Date(options.now.getTime() - CLOCK_SKEW_MS);
  cert.validity.notAfter = new Date(options.now.getTime() + options.days * 86_400_000);
  cert.setSubject(subject);
  cert.setIssuer(issuer);
  cert.setExtensions(extensions);
  return cert;
}

/** forge writes CRLF line ends; the key files node:crypto writes, and most tools, use LF. */
function toPem(cert: forge.pki.Certificate): string {
  return forge.pki.certificateToPem(cert).replaceAll('\r\n', '\n');
}

/** 128 random bits as a positive DER INTEGER with no leading zero byte (RFC 5280 §4.1.2.2). */
function serialNumber(bytes: Buffer): string {
  const serial = Buffer.from(bytes);
  serial[0] = (serial[0]! % 0x7f) + 1;
  return serial.toString('hex');
}

/** UTF8String rather than forge's default PrintableString, which cannot hold "_" or "@". */
function utf8(name: string, value: string): forge.pki.CertificateField {
  // The typings call valueTagClass an asn1.Class; forge reads it as the universal tag number.
  return { name, value, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class };
}

/**
 * node:crypto against node-forge for the vault's envelope (DESIGN §6 chose node:crypto as "an
 * order of magnitude faster"). seal = a fresh 32-byte DEK, AES-256-GCM over a ~330-byte
 * credential, the DEK wrapped by the KEK with AES-256-GCM; open = unwrap, then decrypt. The
 * node:crypto side is the vault's own Envelope and LocalKeyWrapper; the node-forge side does
 * the same steps with forge.cipher (same AADs, same record format, checked by opening each
 * side's records with the other). Both take their random bytes from crypto.randomBytes, so the
 * ratio is the AEAD's.
 */
import { randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { encodeCredential } from '../src/credentials/credential';
import { decodeEnvelope, dekAad, encodeEnvelope, Envelope, FORMAT_VERSION, recordAad, type RecordContext } from '../src/crypto/envelope';
import { LocalKeyWrapper } from '../src/crypto/key-wrapper';
import { Keyring } from '../src/crypto/keyring';
import { KeyringHolder } from '../src/crypto/keyring-holder';
import { githubLike } from './lib/credentials';
import { figure, median, type SuiteResult } from './lib/figures';
import type { BenchOptions } from './lib/options';
import { progress, runSuiteMain } from './lib/suite';

const SUITE = 'crypto';
const IV = 12;
const TAG = 16;

interface Sealer {
  seal(plaintext: Buffer, ctx: RecordContext): Promise<Buffer>;
  open(blob: Buffer, ctx: RecordContext): Promise<Buffer>;
}

/** The vault's envelope, step for step, with node-forge's AES-GCM. */
class ForgeEnvelope implements Sealer {
  constructor(
    private readonly kekId: string,
    private readonly kek: Buffer,
  ) {}

  async seal(plaintext: Buffer, ctx: RecordContext): Promise<Buffer> {
    const dek = randomBytes(32);
    const iv = randomBytes(IV);
    const record = gcmSeal(dek, iv, plaintext, recordAad(ctx));
    const wrapIv = randomBytes(IV);
    const wrapped = gcmSeal(this.kek, wrapIv, dek, dekAad(this.kekId, ctx));
    return encodeEnvelope({
      version: FORMAT_VERSION,
      kekId: this.kekId,
      wrappedDek: Buffer.concat([wrapIv, wrapped.ciphertext, wrapped.tag]),
      iv,
      ciphertext: record.ciphertext,
      tag: record.tag,
    });
  }

  async open(blob: Buffer, ctx: RecordContext): Promise<Buffer> {
    const parts = decodeEnvelope(blob);
    if (parts.kekId !== this.kekId) throw new Error('unknown KEK');
    const w = parts.wrappedDek;
    const dek = gcmOpen(this.kek, w.subarray(0, IV), w.subarray(IV, w.length - TAG), w.subarray(w.length - TAG), dekAad(parts.kekId, ctx));
    return gcmOpen(dek, parts.iv, parts.ciphertext, parts.tag, recordAad(ctx));
  }
}

const binary = (bytes: Buffer) => bytes.toString('binary');

function gcmSeal(key: Buffer, iv: Buffer, plaintext: Buffer, aad: Buffer): { ciphertext: Buffer; tag: Buffer } {
  const cipher = forge.cipher.createCipher('AES-GCM', binary(key));
  cipher.start({ iv: binary(iv), additionalData: binary(aad), tagLength: TAG * 8 });
  cipher.update(forge.util.createBuffer(binary(plaintext)));
  cipher.finish();
  return { ciphertext: Buffer.from(cipher.output.getBytes(), 'binary'), tag: Buffer.from(cipher.mode.tag.getBytes(), 'binary') };
}

function gcmOpen(key: Buffer, iv: Buffer, ciphertext: Buffer, tag: Buffer, aad: Buffer): Buffer {
  const decipher = forge.cipher.createDecipher('AES-GCM', binary(key));
  decipher.start({ iv: binary(iv), additionalData: binary(aad), tagLength: TAG * 8, tag: forge.util.createBuffer(binary(tag)) });
  decipher.update(forge.util.createBuffer(binary(ciphertext)));
  if (!decipher.finish()) throw new Error('forge: the tag does not verify');
  return Buffer.from(decipher.output.getBytes(), 'binary');
}

/** Operations per second of `op` over `seconds`, in batches of 200 (after a short warm-up). */
async function opsPerSecond(seconds: number, op: (i: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 500; i++) await op(i);
  let done = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  while (performance.now() < until) {
    for (let i = 0; i < 200; i++) await op(done + i);
    done += 200;
  }
  return done / ((performance.now() - started) / 1000);
}

export async function run(options: BenchOptions): Promise<SuiteResult> {
  const kek = randomBytes(32);
  const node = new Envelope(new LocalKeyWrapper(new KeyringHolder(Keyring.parse({ active: 'k1', keys: { k1: kek.toString('base64') } }))));
  const forgeEnvelope = new ForgeEnvelope('k1', kek);
  const plaintext = encodeCredential(githubLike());
  const users = Array.from({ length: 1000 }, (_, i) => ({ user: `user-${i}`, provider: 'github' }));
  const ctx = (i: number) => users[i % users.length] as RecordContext;

  // Same work on both sides: each opens what the other sealed.
  const fromForge = await forgeEnvelope.seal(plaintext, ctx(1));
  const fromNode = await node.seal(plaintext, ctx(2));
  if (!(await node.open(fromForge, ctx(1))).equals(plaintext) || !(await forgeEnvelope.open(fromNode, ctx(2))).equals(plaintext)) {
    throw new Error('node:crypto and node-forge envelopes disagree');
  }

  const sealedBy = async (sealer: Sealer) => Promise.all(users.map((u) => sealer.seal(plaintext, u)));
  const nodeBlobs = await sealedBy(node);
  const forgeBlobs = await sealedBy(forgeEnvelope);
  const rounds = 3;
  const samples = { nodeSeal: [] as number[], forgeSeal: [] as number[], nodeOpen: [] as number[], forgeOpen: [] as number[] };
  const each = options.cryptoSeconds / rounds;
  for (let r = 0; r < rounds; r++) {
    progress(SUITE, `round ${r + 1}/${rounds}`);
    samples.nodeSeal.push(await opsPerSecond(each, (i) => node.seal(plaintext, ctx(i))));
    samples.forgeSeal.push(await opsPerSecond(each, (i) => forgeEnvelope.seal(plaintext, ctx(i))));
    samples.nodeOpen.push(await opsPerSecond(each, (i) => node.open(nodeBlobs[i % users.length] as Buffer, ctx(i))));
    samples.forgeOpen.push(await opsPerSecond(each, (i) => forgeEnvelope.open(forgeBlobs[i % users.length] as Buffer, ctx(i))));
  }
  const nodeSeal = median(samples.nodeSeal);
  const forgeSeal = median(samples.forgeSeal);
  const nodeOpen = median(samples.nodeOpen);
  const forgeOpen = median(samples.forgeOpen);
  return {
    suite: SUITE,
    title: `envelope seal / open of a ${plaintext.length}-byte credential, one thread, median of ${rounds} × ${each.toFixed(1)} s`,
    figures: [
      figure('crypto.node.seal', 'node:crypto seal', nodeSeal, 'ops/s'),
      figure('crypto.forge.seal', 'node-forge seal', forgeSeal, 'ops/s'),
      figure('crypto.ratio.seal', 'node:crypto / node-forge seal', nodeSeal / forgeSeal, '×', { digits: 1 }),
      figure('crypto.node.open', 'node:crypto open', nodeOpen, 'ops/s'),
      figure('crypto.forge.open', 'node-forge open', forgeOpen, 'ops/s'),
      figure('crypto.ratio.open', 'node:crypto / node-forge open', nodeOpen / forgeOpen, '×', { digits: 1 }),
    ],
    details: { plaintextBytes: plaintext.length, sealedBytes: fromNode.length, samples },
  };
}

if (require.main === module) runSuiteMain(run);

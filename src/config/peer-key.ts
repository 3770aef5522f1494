/**
 * The shared peer key: file contents → key bytes, or an error that says what is wrong. Pure.
 *
 * Accepted forms (surrounding whitespace and newlines ignored):
 *   hex     only [0-9a-fA-F], even length (e.g. `openssl rand -hex 32`)
 *   base64  standard or URL-safe alphabet, padding optional (e.g. `head -c 32 /dev/urandom | base64`)
 * A file made only of hex digits is read as hex. Anything else is rejected rather than used as raw
 * text, so a passphrase or a placeholder cannot slip in.
 *
 * Strength rule: at least 32 bytes after decoding AND at least 16 distinct byte values. The second
 * part is not a randomness test; it rejects all-zero, repeated and patterned placeholder keys
 * (a random 32-byte key has about 28 distinct values, fewer than 16 essentially never happens).
 *
 * `readPeerKey` is the agent's one read of vip_peer_key_file: a missing, unreadable or weak key is a
 * ConfigError (exit 2) before anything on the host is touched.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from './settings.js';

export const MIN_KEY_BYTES = 32;
export const MIN_DISTINCT_BYTES = 16;

export type PeerKeyProblem = 'missing' | 'empty' | 'encoding' | 'short' | 'low-diversity';

export class PeerKeyError extends Error {
  override readonly name = 'PeerKeyError';
  constructor(
    readonly problem: PeerKeyProblem,
    /** What is wrong with the key, without the source. */
    readonly detail: string,
    source: string,
  ) {
    super(`${source}: ${detail}`);
  }
}

const HEX = /^[0-9a-fA-F]+$/;
const B64 = /^[A-Za-z0-9+/\-_]+={0,2}$/;

/**
 * `contents` is what was read from the file, or undefined when there is no file.
 * `source` names the setting and path in messages, e.g. "vip_peer_key_file=/etc/vipd/peer.key".
 */
export function parsePeerKey(contents: string | Uint8Array | undefined, source = 'vip_peer_key_file'): { ok: true; key: Buffer } | { ok: false; error: PeerKeyError } {
  const fail = (p: PeerKeyProblem, m: string) => ({ ok: false as const, error: new PeerKeyError(p, m, source) });
  if (contents === undefined) return fail('missing', 'no key file; peer mode needs a shared key (generate one with `head -c 32 /dev/urandom | base64`)');
  let text: string;
  if (typeof contents === 'string') text = contents;
  else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(contents);
    } catch {
      return fail('encoding', 'the key must be hex or base64 text, found binary data');
    }
  }
  text = text.trim();
  if (text.length === 0) return fail('empty', 'the key file is empty');
  let key: Buffer;
  if (HEX.test(text) && text.length % 2 === 0) {
    key = Buffer.from(text, 'hex');
  } else if (B64.test(text)) {
    if (/[+/]/.test(text) && /[-_]/.test(text)) return fail('encoding', 'the key mixes the base64 and base64url alphabets');
    const bare = text.replace(/=+$/, '');
    if (bare.length % 4 === 1) return fail('encoding', 'the key is not valid base64 (bad length)');
    key = Buffer.from(bare, 'base64');
  } else {
    return fail('encoding', 'the key must be hex or base64 (one alphabet, no spaces inside)');
  }
  if (key.length < MIN_KEY_BYTES) return fail('short', `the key decodes to ${key.length} bytes; at least ${MIN_KEY_BYTES} are required`);
  const distinct = new Set(key).size;
  if (distinct < MIN_DISTINCT_BYTES) {
    return fail('low-diversity', `the key has only ${distinct} distinct byte values (at least ${MIN_DISTINCT_BYTES}); it looks like a placeholder, not random bytes`);
  }
  return { ok: true, key };
}

export async function readPeerKey(path: string): Promise<Buffer> {
  const contents = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError('vip_peer_key_file', path, `cannot be read (${err.code ?? err.message})`);
  });
  const parsed = parsePeerKey(contents);
  if (!parsed.ok) throw new ConfigError('vip_peer_key_file', path, parsed.error.detail);
  return parsed.key;
}

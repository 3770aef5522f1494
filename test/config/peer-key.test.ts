import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { parsePeerKey } from '../../src/config/peer-key.js';

const random32 = randomBytes(32);

describe('peer key file', () => {
  test('accepts base64 (standard and URL-safe, with or without padding) and hex', () => {
    for (const text of [
      random32.toString('base64'),
      random32.toString('base64') + '\n',
      random32.toString('base64url'),
      random32.toString('base64').replace(/=+$/, ''),
      random32.toString('hex'),
      '  ' + random32.toString('hex').toUpperCase() + '\r\n',
    ]) {
      const r = parsePeerKey(text);
      expect(r.ok, text).toBe(true);
      if (r.ok) expect(r.key.equals(random32)).toBe(true);
    }
    const bytes = parsePeerKey(new TextEncoder().encode(random32.toString('base64')));
    expect(bytes.ok).toBe(true);
  });

  test.each([
    [undefined, 'missing', /no key file/],
    ['', 'empty', /empty/],
    ['   \n', 'empty', /empty/],
    ['correct horse battery staple!', 'encoding', /hex or base64/],
    [randomBytes(32).toString('base64').slice(0, 5), 'encoding', /base64/],
    ['ab+/cdefghijklmnopqrstuvwxyz-_ABCDEFGHIJKLMNOPQRSTUV', 'encoding', /mixes/],
    [randomBytes(16).toString('base64'), 'short', /16 bytes; at least 32/],
    [randomBytes(31).toString('hex'), 'short', /31 bytes/],
    [Buffer.alloc(32).toString('base64'), 'low-diversity', /1 distinct/],
    [Buffer.from('abcd'.repeat(16)).toString('base64'), 'low-diversity', /4 distinct/],
  ] as const)('rejects %j as %s', (text, problem, message) => {
    const r = parsePeerKey(text, 'vip_peer_key_file=/etc/vipd/peer.key');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.problem).toBe(problem);
    expect(r.error.message).toMatch(/^vip_peer_key_file=\/etc\/vipd\/peer\.key: /);
    expect(r.error.message).toMatch(message);
  });

  test('binary file contents are refused with a clear message', () => {
    const r = parsePeerKey(new Uint8Array([0xff, 0xfe, 0x00, 0x80]));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.problem).toBe('encoding');
  });
});

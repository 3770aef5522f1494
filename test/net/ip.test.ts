import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalIp, familyBits, familyName, familyOf, hostPort, inPrefix, ipFromBytes, ipToBytes, isIpv4Mapped } from '../../src/net/ip.js';

describe('canonicalIp', () => {
  it('IP normalisation (RFC 5952) and family', () => {
    expect(canonicalIp('2001:DB8:0:0:0:0:0:100')).toBe('2001:db8::100');
    expect(canonicalIp('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalIp('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
    expect(canonicalIp('::')).toBe('::');
    expect(canonicalIp('::ffff:198.18.0.1')).toBe('::ffff:c612:1');
    expect(familyOf('198.18.0.1')).toBe(4);
    expect(familyOf('2001:db8::1')).toBe(6);
    for (const bad of ['198.18.0', '198.18.0.256', '01.2.3.4', '2001:db8::1::2', '1:2:3:4:5:6:7:8:9', 'fe80::1%eth0', '']) {
      expect(familyOf(bad)).toBeUndefined();
    }
  });

  it('compresses the longest zero run, the leftmost on a tie, never a single group (RFC 5952 §4.2)', () => {
    expect(canonicalIp('2001:0:0:1:0:0:0:1')).toBe('2001:0:0:1::1');
    expect(canonicalIp('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(canonicalIp('1:0:0:0:0:0:0:0')).toBe('1::');
    expect(canonicalIp('1:2:3:4:5:6:7::')).toBe('1:2:3:4:5:6:7:0');
  });

  it('lower-cases hex and drops leading zeros in groups', () => {
    expect(canonicalIp('2001:0DB8:00AB:000C::00FF')).toBe('2001:db8:ab:c::ff');
    expect(canonicalIp('FE80::ABCD')).toBe('fe80::abcd');
  });

  it('IPv4-mapped IPv6 stays IPv6, in hex groups; IPv4-compatible keeps its value', () => {
    expect(canonicalIp('::FFFF:198.18.0.1')).toBe('::ffff:c612:1');
    expect(canonicalIp('::ffff:c612:1')).toBe('::ffff:c612:1');
    expect(familyOf('::ffff:198.18.0.1')).toBe(6);
    expect(canonicalIp('::198.18.0.1')).toBe('::c612:1');
    expect(canonicalIp('2001:db8::198.18.0.1')).toBe('2001:db8::c612:1');
  });

  it('IPv4 is the strict dotted quad', () => {
    expect(canonicalIp('198.18.0.1')).toBe('198.18.0.1');
    expect(canonicalIp('0.0.0.0')).toBe('0.0.0.0');
    for (const bad of ['010.1.1.1', '1.2.3', '127.1', '0x7f.0.0.1', '1.2.3.4.5', '256.0.0.1', ' 198.18.0.1', '198.18.0.1\n', '1.2.3.4/32']) {
      expect(canonicalIp(bad), bad).toBeUndefined();
    }
  });

  it('is undefined for anything that is not an address', () => {
    for (const bad of ['', 'x', '::ffff:1.2.3', '2001:db8::01.2.3.4', '00001::1', '[::1]', '::1/128', 'fe80::1%eth0', '::1.2.3.4%eth0', 'localhost']) {
      expect(canonicalIp(bad), bad).toBeUndefined();
      expect(familyOf(bad), bad).toBeUndefined();
      expect(ipToBytes(bad), bad).toBeUndefined();
    }
  });

  it('is idempotent and keeps the value of any address', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
        const c = canonicalIp(ip);
        expect(c, ip).toBeDefined();
        expect(canonicalIp(c as string)).toBe(c);
        expect(ipFromBytes(ipToBytes(ip) as Buffer)).toBe(c);
      }),
    );
  });
});

describe('bytes', () => {
  it('4 or 16 bytes in network order', () => {
    expect(ipToBytes('198.18.0.1')?.toString('hex')).toBe('c6120001');
    expect(ipToBytes('2001:db8::1')?.toString('hex')).toBe('20010db8000000000000000000000001');
    expect(ipFromBytes(Buffer.from('c6120001', 'hex'))).toBe('198.18.0.1');
    expect(ipFromBytes(Buffer.from('ff0200000000000000000001ff000100', 'hex'))).toBe('ff02::1:ff00:100');
    expect(ipFromBytes(new Uint8Array(16))).toBe('::');
  });

  it('any other length is the caller’s mistake', () => {
    expect(() => ipFromBytes(new Uint8Array(5))).toThrow(RangeError);
  });
});

describe('family and prefixes', () => {
  it('names and widths', () => {
    expect([familyBits(4), familyBits(6)]).toEqual([32, 128]);
    expect([familyName(4), familyName(6)]).toEqual(['IPv4', 'IPv6']);
  });

  it('IPv4-mapped in any spelling', () => {
    expect(isIpv4Mapped('::ffff:198.18.0.1')).toBe(true);
    expect(isIpv4Mapped('0:0:0:0:0:FFFF:c612:1')).toBe(true);
    expect(isIpv4Mapped('::198.18.0.1')).toBe(false);
    expect(isIpv4Mapped('198.18.0.1')).toBe(false);
    expect(isIpv4Mapped('x')).toBe(false);
  });

  it('inPrefix needs one family and the same leading bits', () => {
    expect(inPrefix('198.18.0.200', '198.18.0.1', 24)).toBe(true);
    expect(inPrefix('198.18.1.1', '198.18.0.1', 24)).toBe(false);
    expect(inPrefix('2001:db8::ffff', '2001:DB8::1', 64)).toBe(true);
    expect(inPrefix('2001:db9::1', '2001:db8::1', 32)).toBe(false);
    expect(inPrefix('::ffff:198.18.0.1', '198.18.0.1', 0)).toBe(false);
    expect(inPrefix('x', '198.18.0.1', 0)).toBe(false);
  });
});

describe('hostPort', () => {
  it('brackets IPv6 literals only', () => {
    expect(hostPort('198.18.0.1', 6443)).toBe('198.18.0.1:6443');
    expect(hostPort('2001:db8::1', 6443)).toBe('[2001:db8::1]:6443');
    expect(hostPort('fe80::1%eth0', 80)).toBe('[fe80::1%eth0]:80');
    expect(hostPort('api.example', 443)).toBe('api.example:443');
  });
});

import { describe, expect, it } from 'vitest';
import { Rtnl } from '../../src/net/netlink.js';

describe('Rtnl', () => {
  it('runs concurrent requests one at a time (the socket cannot run two dumps at once)', async () => {
    const rtnl = Rtnl.open();
    try {
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? rtnl.addresses() : rtnl.links())));
      expect(results.every((r) => r.length > 0)).toBe(true);
    } finally {
      rtnl.close();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { ApiException } from '@kubernetes/client-node';
import {
  chooseTlsServerName,
  endpointFor,
  endpointsFromSlices,
  isEndpointFailure,
  normalizeEndpoint,
  orderEndpoints,
} from '../../src/k8s/client.js';

describe('endpoint helpers', () => {
  it('normalizes endpoints and brackets IPv6', () => {
    expect(normalizeEndpoint('https://127.0.0.1:6443/')).toBe('https://127.0.0.1:6443');
    expect(normalizeEndpoint('https://api.example')).toBe('https://api.example:443');
    expect(endpointFor('2001:db8::5', 6443)).toBe('https://[2001:db8::5]:6443');
    expect(normalizeEndpoint('https://[2001:db8::5]:6443')).toBe('https://[2001:db8::5]:6443');
  });

  it('reads the kubernetes EndpointSlices: https port, ready (or unknown) addresses, exclusions, no duplicates', () => {
    const slices = [
      {
        addressType: 'IPv4',
        ports: [{ name: 'https', port: 6443 }],
        endpoints: [
          { addresses: ['198.18.0.11'], conditions: { ready: true } },
          { addresses: ['198.18.0.12'] },
          { addresses: ['198.18.0.13'], conditions: { ready: false } },
          { addresses: ['198.18.0.14'], conditions: { ready: true } },
        ],
      },
      { addressType: 'IPv6', ports: [{ name: 'https', port: 6443 }], endpoints: [{ addresses: ['2001:db8::11'] }, { addresses: ['198.18.0.11'] }] },
      { addressType: 'FQDN', ports: [{ port: 1 }], endpoints: [{ addresses: ['x.example'] }] },
    ];
    expect(endpointsFromSlices(slices, ['198.18.0.14'])).toEqual([
      'https://198.18.0.11:6443',
      'https://198.18.0.12:6443',
      'https://[2001:db8::11]:6443',
    ]);
  });

  it('tries endpoints that are not cooling down first, in configured order', () => {
    const all = ['https://l:1', 'https://a:1', 'https://b:1'];
    expect(orderEndpoints(all, new Map(), 0)).toEqual(all);
    const down = new Map([
      ['https://l:1', 500],
      ['https://a:1', 400],
    ]);
    expect(orderEndpoints(all, down, 100)).toEqual(['https://b:1', 'https://a:1', 'https://l:1']);
    expect(orderEndpoints(all, down, 450)).toEqual(['https://a:1', 'https://b:1', 'https://l:1']);
    expect(orderEndpoints(all, down, 500)).toEqual(all);
  });

  it('verifies the certificate against tls-server-name, else the kubeconfig host name, else "kubernetes"', () => {
    expect(chooseTlsServerName({ server: 'https://198.18.0.10:6443' })).toBe('kubernetes');
    expect(chooseTlsServerName({ server: 'https://[2001:db8::10]:6443' })).toBe('kubernetes');
    expect(chooseTlsServerName({ server: 'https://cp.example:6443' })).toBe('cp.example');
    expect(chooseTlsServerName({ server: 'https://cp.example:6443', tlsServerName: 'api' })).toBe('api');
    expect(chooseTlsServerName({ server: 'https://cp.example:6443' }, 'override')).toBe('override');
    expect(chooseTlsServerName(null)).toBe('kubernetes');
  });

  it('fails over on no answer, 429 and 5xx, not on other answers', () => {
    expect(isEndpointFailure(new TypeError('fetch failed'))).toBe(true);
    expect(isEndpointFailure(new DOMException('timeout', 'TimeoutError'))).toBe(true);
    expect(isEndpointFailure(new ApiException(503, 'x', {}, {}))).toBe(true);
    expect(isEndpointFailure(new ApiException(429, 'x', {}, {}))).toBe(true);
    for (const c of [401, 403, 404, 409, 422]) expect(isEndpointFailure(new ApiException(c, 'x', {}, {}))).toBe(false);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hostAllowed } from './api.ts';

describe('hostAllowed (DNS rebinding)', () => {
  const cases: Array<[string, string, string[], boolean]> = [
    // [Host header, admin listen host, admin.allowed_hosts, allowed]
    ['127.0.0.1:9901', '127.0.0.1', [], true],
    ['localhost:9901', '127.0.0.1', [], true],
    ['LocalHost.:9901', '127.0.0.1', [], true],
    ['localhost', '127.0.0.1', [], true],
    ['[::1]:9901', '127.0.0.1', [], true],
    ['evil.example:9901', '127.0.0.1', [], false],
    ['evil.example', '127.0.0.1', [], false],
    ['localhost.evil.example:9901', '127.0.0.1', [], false],
    ['127.0.0.1.nip.io:9901', '127.0.0.1', [], false],
    ['10.1.2.3:9901', '127.0.0.1', [], false],
    ['', '127.0.0.1', [], false],
    ['[::1', '127.0.0.1', [], false],
    ['localhost:evil', '127.0.0.1', [], false],
    // The listen address itself (a pod IP), and configured names.
    ['10.1.2.3:9901', '10.1.2.3', [], true],
    ['10.1.2.4:9901', '10.1.2.3', [], false],
    ['[fd00::7]:9901', 'fd00::7', [], true],
    ['gw-admin.ops.svc:9901', '127.0.0.1', ['gw-admin.ops.svc'], true],
    ['GW-ADMIN.ops.svc', '127.0.0.1', ['gw-admin.ops.svc'], true],
    ['other.ops.svc:9901', '127.0.0.1', ['gw-admin.ops.svc'], false],
    // Listening on every interface: kubelet and Prometheus use the pod IP.
    ['10.244.1.12:9901', '0.0.0.0', [], true],
    ['[fd00::12]:9901', '::', [], true],
    ['evil.example:9901', '0.0.0.0', [], false],
    ['300.1.1.1:9901', '0.0.0.0', [], false],
    ['10.244.1.12.evil.example', '0.0.0.0', [], false],
  ];
  for (const [host, listen, allowed, want] of cases) {
    it(`${JSON.stringify(host)} on ${listen}${allowed.length ? ` + ${allowed.join(',')}` : ''}: ${want ? 'allowed' : 'refused'}`, () => {
      assert.equal(hostAllowed(host, listen, allowed), want);
    });
  }
});

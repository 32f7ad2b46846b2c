import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus } from './status-format.ts';

const cluster = (name: string, weight: number) => ({ cluster: name, role: null, weight, status: 'RUNNING', capacity: 32, in_flight: 0, queued: 0, ready: true });

describe('formatStatus', () => {
  it('says which apps take their weights from an HTTPRoute (Gateway API mode), and only those', () => {
    const text = formatStatus({
      apps: [
        { name: 'llm', route_prefix: '/llm', status: 'Healthy', status_reason: '', weights_from: 'httproute ray/llm-httproute', clusters: [cluster('blue', 75), cluster('green', 25)], rollout: null },
        { name: 'web', route_prefix: '/', status: 'Healthy', status_reason: '', weights_from: 'gateway', clusters: [cluster('blue', 100)], rollout: null },
      ],
      clusters: [],
      warnings: [],
    });
    assert.match(text, /^weights of llm from httproute ray\/llm-httproute \(set them there, not here\)$/m);
    assert.doesNotMatch(text, /weights of web/);
  });
});

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

  it('says how many data-plane threads run (workers), which are down, and the shared admission slots', () => {
    const base = { apps: [], clusters: [], warnings: [] };
    assert.doesNotMatch(formatStatus({ ...base, workers: null }), /workers:/);
    const text = formatStatus({
      ...base,
      workers: { count: 3, admission_slots: { used: 4, total: 32768 }, threads: [{ index: 1, running: true, restarts: 1 }, { index: 2, running: false, restarts: 2 }] },
    });
    assert.match(text, /^workers: 3 data-plane threads \(main \+ 2, 1 NOT RUNNING\), 3 restart\(s\), shared admission slots 4\/32768$/m);
  });
});

// The Serve conformance cases (test/conformance/serve-cases.ts) against real
// Ray Serve: cluster "conf" serves serve-conformance.yaml, cluster "noroot"
// serve-no-root.yaml, both with the generic app of test/ray/apps. The same
// cases run against the simulator in test/conformance/sim.test.ts.
import { after, before, describe } from 'node:test';
import { join } from 'node:path';
import { conformanceCases } from '../conformance/serve-cases.ts';
import { send } from '../conformance/http-client.ts';
import { RayCluster, Redis, REPO, rayUnavailable, startClusters } from './ray-cluster.ts';

const skip = rayUnavailable();
const FIXTURES = join(REPO, 'test/conformance');

describe('conformance: real Ray Serve', { skip: skip ?? false }, () => {
  let conf: RayCluster;
  let noroot: RayCluster;
  let redis: Redis | null = null;

  before(async () => {
    const started = await startClusters(['conf', 'noroot']);
    [conf, noroot] = started.clusters as [RayCluster, RayCluster];
    redis = started.redis;
    await Promise.all([
      conf.deploy(join(FIXTURES, 'serve-conformance.yaml')),
      noroot.deploy(join(FIXTURES, 'serve-no-root.yaml')),
    ]);
  }, { timeout: 240_000 });

  after(() => {
    conf?.stop();
    noroot?.stop();
    redis?.stop();
  });

  conformanceCases(() => ({
    baseUrl: conf.serveUrl,
    noRootBaseUrl: noroot.serveUrl,
    dashboardUrl: conf.dashboardUrl,
    hooks: {
      // The app counts its own cancellations (CancelledError in the replica).
      cancelledCount: async (app) => {
        const r = await send(`${conf.serveUrl}/${app}/_stats`);
        return (JSON.parse(r.body) as { cancelled: number }).cancelled;
      },
      // No drain hook: a local head node cannot be put into draining.
    },
  }));
});

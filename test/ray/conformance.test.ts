// The Serve conformance cases (test/conformance/serve-cases.ts) against real
// Ray Serve: cluster "conf" serves serve-conformance.yaml, cluster "noroot"
// serve-no-root.yaml, both with the generic app of test/ray/apps. The same
// cases run against the simulator in test/conformance/sim.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { conformanceCases } from '../conformance/serve-cases.ts';
import { send, sendJson, sseData } from '../conformance/http-client.ts';
import { CLUSTER_SETUP_TIMEOUT_MS, RayCluster, Redis, REPO, rayUnavailable, startClusters } from './ray-cluster.ts';

const skip = rayUnavailable();
const FIXTURES = join(REPO, 'test/conformance');

/**
 * serve-no-root.yaml plus examples/serve_app.py (the RayService example's app)
 * on /example. The harness puts examples/ on the clusters' PYTHONPATH: a Serve
 * config's runtime_env.working_dir must be a remote URI (a local path is refused
 * with 400 at deploy).
 */
function withExample(file: string): Record<string, unknown> {
  const doc = parseYaml(readFileSync(file, 'utf8')) as { applications: unknown[] };
  doc.applications.push({
    name: 'example',
    route_prefix: '/example',
    import_path: 'serve_app:deployment',
    deployments: [{ name: 'LLMServer', num_replicas: 1, ray_actor_options: { num_cpus: 0 } }],
  });
  return doc;
}

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
      noroot.deploy(withExample(join(FIXTURES, 'serve-no-root.yaml'))),
    ]);
  }, { timeout: CLUSTER_SETUP_TIMEOUT_MS });

  after(() => {
    conf?.stop();
    noroot?.stop();
    redis?.stop();
  });

  test('examples/serve_app.py: JSON completion and SSE stream on real Serve', { timeout: 30_000 }, async () => {
    const r = await sendJson(`${noroot.serveUrl}/example/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { object: string; path: string; choices: Array<{ message: { content: string } }> };
    assert.equal(body.object, 'chat.completion');
    assert.equal(body.path, '/example/v1/chat/completions');
    assert.match(body.choices[0]!.message.content, /^tok0 tok1/);
    const s = await sendJson(`${noroot.serveUrl}/example/v1/chat/completions`, { stream: true });
    assert.equal(s.status, 200);
    assert.match(String(s.headers['content-type']), /^text\/event-stream/);
    const frames = sseData(s.body);
    assert.equal(frames.at(-1), '[DONE]');
    assert.equal(frames.length, 9, '8 tokens and [DONE]');
    assert.equal((JSON.parse(frames[0]!) as { object: string }).object, 'chat.completion.chunk');
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

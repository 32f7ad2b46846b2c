// The same Serve conformance cases, through the gateway: a client must not be
// able to tell the gateway from a Serve proxy (routing, texts, headers,
// streaming, backpressure, cancellation). The drain hook is left out on
// purpose: the gateway answers /-/healthz itself and drains on SIGTERM.
import { after, before, describe } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSimConfig } from '../../src/sim/sim-config.ts';
import { startSim, type Sim } from '../../src/sim/sim.ts';
import { startGateway, type Gateway } from '../../src/main.ts';
import { buildConfig, LogRecorder, waitFor } from '../helpers/stack.ts';
import { conformanceCases } from './serve-cases.ts';

describe('conformance: gateway in front of the simulator', () => {
  let sim: Sim;
  const gateways: Gateway[] = [];
  const dirs: string[] = [];

  const front = async (cluster: string, serveConfig: string): Promise<Gateway> => {
    const c = sim.cluster(cluster);
    const dir = mkdtempSync(join(tmpdir(), 'sg-conf-'));
    dirs.push(dir);
    const config = buildConfig({
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      state_dir: dir,
      clusters: [{ name: cluster, endpoints: c.proxyUrls(), ...(c.dashboardUrl ? { dashboard: c.dashboardUrl } : {}), serve_config: join(import.meta.dirname, serveConfig) }],
      // Serve's own queue (max_queued_requests) is what the backpressure case checks, so the
      // gateway's queue must not be larger: it takes the app's max_queued_requests as its bound.
      admission: { queue_size: 100 },
    });
    const gw = await startGateway({ config, logger: new LogRecorder(), watch: false, adminToken: null });
    gateways.push(gw);
    // Until its first probe answers, an endpoint is not healthy: on a busy machine that can take
    // longer than the first case, which would then get 503 "No healthy Serve endpoint".
    await waitFor(() => [...gw.reconciler.clusters.values()].every((cl) => cl.endpoints.every((e) => e.health.probeOk === true)), 30_000, `first probes of ${cluster}`);
    return gw;
  };

  before(async () => {
    const parsed = parseSimConfig(
      {
        clusters: [
          { name: 'conf', proxies: ['127.0.0.1:0'], dashboard: '127.0.0.1:0', serve_config: 'serve-conformance.yaml', apps: { '*': { latency_ms: 0, tokens: 4, token_interval_ms: 1 } } },
          { name: 'noroot', proxies: ['127.0.0.1:0'], serve_config: 'serve-no-root.yaml' },
        ],
      },
      { file: 'gateway.test.ts', baseDir: import.meta.dirname },
    );
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    sim = await startSim(parsed.config, { control: false });
    await front('conf', 'serve-conformance.yaml');
    await front('noroot', 'serve-no-root.yaml');
  });

  after(async () => {
    for (const gw of gateways) await gw.close();
    await sim?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  conformanceCases(() => ({
    baseUrl: gateways[0]!.url,
    noRootBaseUrl: gateways[1]!.url,
    // "*" and targets uvicorn cannot parse: the gateway's own 400 BR (docs/errors.md).
    localBadRequest: true,
    hooks: { cancelledCount: (app) => sim.stats().clusters['conf']?.apps[app]?.cancelled ?? 0 },
  }));
});

// Runs the Serve conformance cases against the simulator on loopback port 0.
import { after, before, describe } from 'node:test';
import { parseSimConfig } from '../../src/sim/sim-config.ts';
import { startSim } from '../../src/sim/sim.ts';
import type { Sim } from '../../src/sim/sim.ts';
import { conformanceCases } from './serve-cases.ts';

describe('conformance: simulator', () => {
  let sim: Sim;

  before(async () => {
    const parsed = parseSimConfig(
      {
        clusters: [
          {
            name: 'conf',
            proxies: ['127.0.0.1:0', '127.0.0.1:0'],
            dashboard: '127.0.0.1:0',
            serve_config: 'serve-conformance.yaml',
            apps: { '*': { latency_ms: 0, tokens: 4, token_interval_ms: 1 } },
          },
          { name: 'noroot', proxies: ['127.0.0.1:0'], serve_config: 'serve-no-root.yaml' },
        ],
      },
      { file: 'sim.test.ts', baseDir: import.meta.dirname },
    );
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    sim = await startSim(parsed.config, { control: false });
  });

  after(() => sim?.close());

  conformanceCases(() => {
    const conf = sim.cluster('conf');
    return {
      baseUrl: conf.proxyUrls()[0] as string,
      noRootBaseUrl: sim.cluster('noroot').proxyUrls()[0] as string,
      dashboardUrl: conf.dashboardUrl ?? undefined,
      hooks: {
        cancelledCount: (app) => sim.stats().clusters['conf']?.apps[app]?.cancelled ?? 0,
        drain: () => conf.drainProxy(0),
        undrain: () => conf.undrainProxy(0),
      },
    };
  });
});

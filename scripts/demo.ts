// `npm start`: two simulated Ray Serve clusters (blue, green) from
// config/sim.yaml and the gateway from config/gateway.yaml in front of them,
// in one process. Prints where everything is and what to try; Ctrl-C stops
// everything (the gateway drains first).
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { loadSimConfig, startSim } from '../src/sim/sim.ts';
import { loadConfigFile, formatIssues } from '../src/config/load.ts';
import { startGateway } from '../src/main.ts';
import type { Logger } from '../src/core/log.ts';

const simPath = process.env['SIM_CONFIG'] ?? 'config/sim.yaml';
const gatewayPath = process.env['GATEWAY_CONFIG'] ?? 'config/gateway.yaml';

const sim = await startSim(loadSimConfig(simPath));
const loaded = await loadConfigFile(gatewayPath);
if (!loaded.ok) {
  process.stderr.write(`invalid ${gatewayPath}:\n${formatIssues(loaded.issues)}\n`);
  await sim.close();
  process.exit(1);
}
const tokenEnv = loaded.config.admin.tokenEnv;
const generated = process.env[tokenEnv] === undefined;
const token = process.env[tokenEnv] ?? randomBytes(12).toString('hex');
const logger = pino({ name: 'serve-gateway', level: process.env['LOG_LEVEL'] ?? 'warn' }) as unknown as Logger;
const gw = await startGateway({ config: loaded.config, configPath: gatewayPath, logger, adminToken: token });
const u = gw.url;

process.stdout.write(`
serve-gateway demo: two simulated Ray Serve clusters and the gateway in front of them

  simulated clusters   ${sim.addresses().join('\n                       ')}
  gateway (data plane) ${u}
  admin API + UI       ${gw.adminUrl}/   (metrics: ${gw.adminUrl}/metrics)
  admin token          ${generated ? `${token}  (generated; export ${tokenEnv}=${token} to use the CLI)` : `from $${tokenEnv}`}

Try:
  curl -i ${u}/llm/v1/chat -H 'content-type: application/json' -d '{"prompt":"hello"}'
  curl -N '${u}/llm/v1/chat/stream?tokens=20&interval_ms=100'
  seq 60 | xargs -P60 -I{} curl -s -o /dev/null -w '%{http_code} ' '${u}/llm/slow?latency_ms=2000'; echo
    (capacity 16 + queue 16: the rest get 503 with x-gateway-flag QF)

Switch traffic (in another shell, with ${tokenEnv} exported):
  ./bin/serve-gateway traffic status
  ./bin/serve-gateway traffic rollout llm --to green --steps 10,50,100 --interval 20s
  ./bin/serve-gateway traffic set llm blue=100 green=0

Ctrl-C stops everything.
`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write('\nstopping: draining the gateway, then the simulated clusters\n');
  await gw.shutdown();
  await sim.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

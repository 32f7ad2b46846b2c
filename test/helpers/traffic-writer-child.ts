// Child process of test/state-durability.test.ts: a real gateway (no network
// needed: probes are stubbed) whose traffic controller changes the weights
// of app "llm" as fast as it can, printing each accepted green weight on a
// line, until the parent kills it with SIGKILL at an arbitrary point.
//   node test/helpers/traffic-writer-child.ts CONFIG_FILE
import { writeSync } from 'node:fs';
import { loadConfigFile, formatIssues } from '../../src/config/load.ts';
import { silentLogger } from '../../src/core/log.ts';
import { startGateway } from '../../src/main.ts';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: traffic-writer-child.ts CONFIG_FILE');
const loaded = await loadConfigFile(path);
if (!loaded.ok) throw new Error(formatIssues(loaded.issues));
const gw = await startGateway({
  config: loaded.config,
  logger: silentLogger,
  adminToken: null,
  watch: false,
  listenPort: 0,
  adminPort: 0,
  probe: async () => ({ ok: true, message: 'stub', unreachable: false }),
});
writeSync(1, 'READY\n');
for (let i = 0; ; i++) {
  const green = 1 + (i % 99);
  const r = await gw.traffic.setWeights('llm', { blue: 100 - green, green }, { force: true, actor: 'writer' });
  if (!r.ok) {
    writeSync(2, `refused: ${r.code} ${r.message}\n`);
    process.exit(1);
  }
  writeSync(1, `${green}\n`);
  if (i % 4 === 3) await new Promise((resolve) => setImmediate(resolve));
}

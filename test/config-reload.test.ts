// Issue 7: a reload that changes listen, admin.listen, admin.token_env or
// state_dir cannot be applied by a running gateway (listeners are bound and
// the state store opened at start). It is refused like an invalid file: the
// running config keeps serving, and the error names the key and says that it
// needs a restart (reload answer, status, log, failure metric).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfigFile } from '../src/config/load.ts';
import { startGateway } from '../src/main.ts';
import { ADMIN_TOKEN, LogRecorder, gatewayDoc, startSimOnly } from './helpers/stack.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

test('reload refuses changes to listen, admin.listen, admin.token_env and state_dir with "needs a restart"; the running config keeps serving', async (t) => {
  const sim = await startSimOnly();
  const dir = mkdtempSync(join(tmpdir(), 'sg-reload-'));
  const file = join(dir, 'gateway.yaml');
  const doc = gatewayDoc(sim, join(dir, 'var'));
  writeFileSync(file, stringify(doc));
  const loaded = await loadConfigFile(file);
  assert.ok(loaded.ok);
  const logs = new LogRecorder();
  const gw = await startGateway({ config: loaded.config, configPath: file, logger: logs, watch: false, adminToken: ADMIN_TOKEN });
  t.after(async () => {
    await gw.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const reload = async () => {
    const res = await fetch(`${gw.adminUrl}/api/v1/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    return { status: res.status, json: (await res.json()) as Json };
  };
  const before = gw.config;

  const changes: Array<[string, Record<string, unknown>, RegExp]> = [
    ['listen', { listen: '127.0.0.1:18123' }, /: listen: changed from "127\.0\.0\.1:0" to "127\.0\.0\.1:18123": this key needs a restart/],
    ['admin.listen', { admin: { listen: '127.0.0.1:19123' } }, /: admin\.listen: changed from "127\.0\.0\.1:0" to "127\.0\.0\.1:19123": this key needs a restart/],
    ['admin.token_env', { admin: { listen: '127.0.0.1:0', token_env: 'SOME_OTHER_TOKEN' } }, /: admin\.token_env: changed from .* needs a restart/],
    ['state_dir', { state_dir: join(dir, 'elsewhere') }, /: state_dir: changed from ".*var" to ".*elsewhere": this key needs a restart/],
  ];
  let failures = 0;
  for (const [key, patch, want] of changes) {
    // A harmless change rides along: it must not be applied either (all or nothing).
    writeFileSync(file, stringify({ ...doc, ...patch, applications: { '*': { weights: { green: 100 } } } }));
    const r = await reload();
    failures++;
    assert.equal(r.status, 422, key);
    assert.equal(r.json['error']['code'], 'CONFIG_INVALID');
    assert.match(r.json['error']['message'], want, key);
    assert.equal(gw.config, before, `${key}: the running config is kept`);
    assert.deepEqual(gw.traffic.weightsOf('llm'), { blue: 100, green: 0 });
    const status = (await (await fetch(`${gw.adminUrl}/api/v1/status`)).json()) as Json;
    assert.equal(status['config']['last_reload']['ok'], false);
    assert.match(status['config']['last_reload']['error'], want);
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, new RegExp(`serve_gateway_config_reloads_total\\{result="failure"\\} ${failures}`));
    assert.ok(logs.lines.some((l) => l.level === 'error' && l.msg === 'config reload refused; keeping the running config'));
  }

  // Back to the running values: the other change is applied.
  writeFileSync(file, stringify({ ...doc, applications: { '*': { weights: { green: 100 } } } }));
  const ok = await reload();
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  assert.deepEqual(gw.traffic.weightsOf('llm'), { blue: 0, green: 100 });
});

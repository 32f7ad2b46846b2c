// SERVE_GATEWAY_STATE_DIR: the default state_dir and the base of relative state
// paths; without it they resolve against the config file's directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from './schema.ts';
import { stateBaseFromEnv } from './state-dir.ts';
import type { GatewayConfig } from './types.ts';

const FILE_MODE = { clusters: [{ name: 'blue', endpoints: ['http://127.0.0.1:8101'] }] };
const K8S_MODE = { source: 'kubernetes', kubernetes: { namespace: 'ray', rayservices: ['llm'] } };

function cfg(doc: Record<string, unknown>, stateBase: string | null): GatewayConfig {
  const r = validateConfig(doc, 'gw.yaml', '/etc/serve-gateway', () => '', stateBase);
  if (!r.ok) assert.fail(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.config;
}

test('without SERVE_GATEWAY_STATE_DIR state paths resolve against the config file directory', () => {
  assert.equal(cfg(FILE_MODE, null).stateDir, '/etc/serve-gateway/var');
  assert.equal(cfg({ ...FILE_MODE, state_dir: './state' }, null).stateDir, '/etc/serve-gateway/state');
  const k = cfg({ ...K8S_MODE, kubernetes: { ...K8S_MODE.kubernetes, last_known_good: 'lkg.json' } }, null);
  assert.equal(k.kubernetes?.lastKnownGood, '/etc/serve-gateway/lkg.json');
});

test('with SERVE_GATEWAY_STATE_DIR it is the default state_dir and the base of relative state paths', () => {
  const base = '/var/lib/serve-gateway';
  assert.equal(cfg(FILE_MODE, base).stateDir, base);
  assert.equal(cfg({ ...FILE_MODE, state_dir: './var' }, base).stateDir, `${base}/var`);
  assert.equal(cfg({ ...FILE_MODE, state_dir: '/data/gw' }, base).stateDir, '/data/gw', 'an absolute state_dir is kept');
  assert.equal(cfg(K8S_MODE, base).kubernetes?.lastKnownGood, `${base}/last-known-good.json`);
  const k = cfg({ ...K8S_MODE, kubernetes: { ...K8S_MODE.kubernetes, last_known_good: 'lkg.json', kubeconfig: 'kc' } }, base);
  assert.equal(k.kubernetes?.lastKnownGood, `${base}/lkg.json`);
  assert.equal(k.kubernetes?.kubeconfig, '/etc/serve-gateway/kc', 'inputs (kubeconfig, serve_config) stay relative to the config file');
});

test('the variable: unset or blank is no base; a relative value is made absolute', () => {
  assert.equal(stateBaseFromEnv({}), null);
  assert.equal(stateBaseFromEnv({ SERVE_GATEWAY_STATE_DIR: '  ' }), null);
  assert.equal(stateBaseFromEnv({ SERVE_GATEWAY_STATE_DIR: '/var/lib/serve-gateway' }), '/var/lib/serve-gateway');
  assert.equal(stateBaseFromEnv({ SERVE_GATEWAY_STATE_DIR: 'rel' }), `${process.cwd()}/rel`);
});

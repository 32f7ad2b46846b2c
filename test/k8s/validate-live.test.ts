// `serve-gateway validate --live` against a real kube-apiserver, as the
// least-privilege ServiceAccount: the RayService's clusters with roles, ready
// serve pods, apps and capacities, the deletion-deadline warning, and exit 1
// for a RayService that does not exist.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { APISERVER_SETUP_TIMEOUT_MS, apiServerUnavailable, startApiServer } from './apiserver.ts';
import type { ApiServer, ServiceAccountAccess } from './apiserver.ts';
import { GATEWAY_ROLE_RULES, KubeRayPlayer } from './kuberay-player.ts';
import { runValidateCommand } from '../../src/config/validate-command.ts';
import { liveCheck, renderLiveReport } from '../../src/kubernetes/live-check.ts';

const unavailable = apiServerUnavailable();
const NS = 'live';

/** `serve-gateway validate ARGS`, wired as the CLI wires it (src/cli/main.ts). */
async function validate(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await runValidateCommand(args, (s) => (out += s.endsWith('\n') ? s : `${s}\n`), async (config) => {
    const r = await liveCheck(config);
    return { ok: r.ok, text: renderLiveReport(r), json: r };
  });
  return { code, out };
}

describe('validate --live against a real kube-apiserver', { skip: unavailable ?? false, concurrency: false }, () => {
  let server: ApiServer;
  let sa: ServiceAccountAccess;
  let player: KubeRayPlayer;
  const dir = mkdtempSync(join(tmpdir(), 'sg-live-'));

  before(
    async () => {
      server = await startApiServer();
      await server.applyCrds();
      sa = await server.serviceAccountKubeConfig({ name: 'serve-gateway', namespace: NS, rules: [...GATEWAY_ROLE_RULES] });
      player = new KubeRayPlayer({ server, namespace: NS, name: 'llm', deletionDelaySeconds: 30 });
      await player.createRayService();
      await player.deployFirstCluster();
    },
    { timeout: APISERVER_SETUP_TIMEOUT_MS + 120_000 },
  );

  after(async () => {
    await player?.stopAll().catch(() => {});
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const configFile = (rayservices: string[], steps: number[]) => {
    const file = join(dir, `gw-${rayservices.join('-')}-${steps.length}.yaml`);
    writeFileSync(
      file,
      stringify({
        source: 'kubernetes',
        kubernetes: { namespace: NS, rayservices, kubeconfig: sa.kubeconfigPath, upgrade: 'rollout' },
        applications: { '*': { rollout: { steps, interval: '20s' } } },
        state_dir: join(dir, 'var'),
      }),
    );
    return file;
  };

  test('reports the clusters with roles, ready serve pods, apps and capacities; warns when a rollout cannot finish before the deletion', { timeout: 60_000 }, async () => {
    const ok = await validate(['--config', configFile(['llm'], [50, 100]), '--live', '--json']);
    assert.equal(ok.code, 0, ok.out);
    const doc = JSON.parse(ok.out) as { ok: boolean; kubernetes: { warnings: string[]; rayservices: Array<Record<string, any>> } }; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(doc.ok, true);
    const rs = doc.kubernetes.rayservices[0]!;
    assert.equal(rs['name'], 'llm');
    assert.equal(rs['deletion_delay_s'], 30);
    const active = (rs['clusters'] as Array<Record<string, any>>).find((c) => c['role'] === 'active')!; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(active['name'], player.active);
    assert.ok((active['ready_endpoints'] as string[]).length >= 1, JSON.stringify(active));
    assert.deepEqual((active['apps'] as Array<{ name: string }>).map((a) => a.name).sort(), ['default', 'llm']);
    assert.ok((active['apps'] as Array<{ capacity: number }>).every((a) => a.capacity > 0));
    assert.deepEqual(doc.kubernetes.warnings, []);

    // 3 intervals of 20 s cannot finish within 30 s: reported, not refused.
    const slow = await validate(['--config', configFile(['llm'], [10, 25, 50, 100]), '--live']);
    assert.equal(slow.code, 0, slow.out);
    assert.match(slow.out, /warning: app (llm|default): its rollout \(3 × 20s\) cannot finish within rayClusterDeletionDelaySeconds 30/);
    assert.match(slow.out, new RegExp(`active\\s+${player.active}: \\d+ ready serve pod`));
  });

  test('a RayService that does not exist fails the check', { timeout: 60_000 }, async () => {
    const r = await validate(['--config', configFile(['nope'], [50, 100]), '--live']);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /problem: RayService live\/nope not found/);
  });
});

// Issue 7, defect 3: a traffic change whose state write fails changes nothing,
// now or later; a rollout step the driver cannot record is not taken; after
// kill -9 at any point the state file never holds a change the audit log lacks.
//
// Tests run as root, where chmod does not stop writes, so writes are made to
// fail for real: the state directory is replaced by a plain file (ENOTDIR on
// every write), or the state file's path is taken by a non-empty directory
// (the audit append works, the rename of the new state file fails).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStateStore, STATE_FILE } from '../src/control/state-store.ts';
import type { AuditEvent, TrafficState } from '../src/control/traffic-state.ts';
import { startGateway } from '../src/main.ts';
import { ADMIN_TOKEN, LogRecorder, SERVE_YAML, adminCall, buildConfig, gatewayDoc, startSimOnly, startStack, waitFor, type Stack } from './helpers/stack.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function clusterOf(url: string): Promise<string> {
  const res = await fetch(url);
  await res.arrayBuffer();
  assert.equal(res.status, 200);
  return res.headers.get('x-serve-cluster') ?? '';
}

function stateFile(stack: Stack): Json {
  return JSON.parse(readFileSync(join(stack.stateDir, STATE_FILE), 'utf8')) as Json;
}

function auditLines(dir: string): Json[] {
  return readFileSync(join(dir, 'audit.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Json);
}

/** Replaces the state directory by a plain file: every write under it fails with ENOTDIR, as root too. */
function breakStateDir(dir: string): () => void {
  renameSync(dir, `${dir}.away`);
  writeFileSync(dir, 'not a directory');
  return () => {
    rmSync(dir);
    renameSync(`${dir}.away`, dir);
  };
}

function assertError(r: { status: number; json: Json }, status: number, code: string): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(r.json['error']?.['code'], code, JSON.stringify(r.json));
}

test('state dir unwritable: changes are refused with 503 and never appear later (traffic, state file, audit)', async () => {
  const stack = await startStack();
  try {
    let r = await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 80, green: 20 } });
    assert.equal(r.status, 200);
    const versionBefore = stateFile(stack)['version'] as number;

    const restore = breakStateDir(stack.stateDir);
    try {
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/default/weights', { weights: { green: 100 } }), 503, 'STATE_WRITE_FAILED');
      r = await adminCall(stack, 'POST', '/api/v1/apps/default/rollout', { to: 'green', steps: [50, 100], interval: '1h' });
      assertError(r, 503, 'STATE_WRITE_FAILED');
      assert.match(r.json['error']['message'], /could not be saved .*ENOTDIR.*nothing was changed/);
      // Promote in one step: the rollout would end `succeeded` at once.
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/default/rollout', { to: 'green', steps: [100] }), 503, 'STATE_WRITE_FAILED');

      assert.deepEqual(stack.gw.traffic.weightsOf('default'), { blue: 100, green: 0 });
      assert.equal(stack.gw.traffic.rolloutOf('default'), null);
      assert.equal(await clusterOf(`${stack.url}/`), 'blue');
      const st = await adminCall(stack, 'GET', '/api/v1/status', undefined, null);
      assert.equal(st.json['state']['write_error']['attempts'], 3);
      assert.match(await stack.gw.metrics.registry.getSingleMetricAsString('serve_gateway_state_write_failures_total'), /source="api"\} 3/);
      assert.match(st.json['state']['write_error']['message'], /ENOTDIR/);
      assert.ok(stack.logs.lines.some((l) => l.level === 'error' && /TRAFFIC STATE NOT SAVED/.test(l.msg ?? '')));
    } finally {
      restore();
    }

    // The next, unrelated, successful change publishes and persists only itself.
    r = await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 70, green: 30 } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(stack.gw.traffic.weightsOf('default'), { blue: 100, green: 0 });
    assert.equal(stack.gw.traffic.rolloutOf('default'), null);
    for (let i = 0; i < 5; i++) assert.equal(await clusterOf(`${stack.url}/after/${i}`), 'blue');
    const saved = stateFile(stack);
    assert.equal(saved['apps']['default'], undefined, 'the refused changes are not in the state file');
    assert.deepEqual(saved['apps']['llm']['weights'], { blue: 70, green: 30 });
    assert.equal(saved['version'], versionBefore + 1);
    const audit = auditLines(stack.stateDir);
    assert.deepEqual(audit.filter((e) => e['app'] === 'default'), [], 'nothing about the refused changes could be written');
    assert.deepEqual(audit.map((e) => [e['action'], e['result'], e['version']]), [
      ['set_weights', 'ok', versionBefore],
      ['set_weights', 'ok', versionBefore + 1],
    ]);
    const st = await adminCall(stack, 'GET', '/api/v1/status', undefined, null);
    assert.equal(st.json['state']['write_error'], null);
  } finally {
    await stack.close();
  }
});

test('state file cannot be replaced after the audit entry: a failed entry follows, the change never applies', async () => {
  const stack = await startStack();
  try {
    // A non-empty directory where the state file goes: the rename over it fails (EISDIR/ENOTEMPTY), as root too.
    const blocker = join(stack.stateDir, STATE_FILE);
    rmSync(blocker, { force: true });
    mkdirSync(join(blocker, 'x'), { recursive: true });
    try {
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/default/weights', { weights: { green: 100 } }), 503, 'STATE_WRITE_FAILED');
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', steps: [10, 100], interval: '1h' }), 503, 'STATE_WRITE_FAILED');
      assert.deepEqual(stack.gw.traffic.weightsOf('default'), { blue: 100, green: 0 });
      assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 100, green: 0 });
      assert.equal(stack.gw.traffic.rolloutOf('llm'), null);
    } finally {
      rmSync(blocker, { recursive: true });
    }
    const r = await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 90, green: 10 } });
    assert.equal(r.status, 200);
    assert.deepEqual(stack.gw.traffic.weightsOf('default'), { blue: 100, green: 0 });
    assert.equal(stack.gw.traffic.rolloutOf('llm'), null);
    const saved = stateFile(stack);
    assert.equal(saved['apps']['default'], undefined);
    assert.equal(saved['apps']['llm']['rollout'], null);
    const audit = auditLines(stack.stateDir);
    assert.deepEqual(audit.map((e) => [e['id'], e['app'], e['action'], e['result'], e['version'] ?? null]), [
      [1, 'default', 'set_weights', 'ok', 1],
      [2, 'default', 'set_weights', 'failed', 1],
      [3, 'llm', 'rollout_start', 'ok', 2],
      [4, 'llm', 'rollout_start', 'failed', 2],
      [5, 'llm', 'set_weights', 'ok', 3],
    ]);
    assert.match(audit[1]!['reason'], /^not applied: event #1 was recorded but cannot write the state file/);
    assert.equal(saved['version'], 3, 'versions of failed changes are not reused');
  } finally {
    await stack.close();
  }
});

test('a rollout step the driver cannot save is not taken: the rollout holds its step, says so, and moves on once writes work', async () => {
  const stack = await startStack();
  try {
    const r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', {
      to: 'green',
      steps: [20, 100],
      interval: '1h',
      min_requests: 5,
      max_error_rate: 0.05,
      on_failure: 'rollback',
    });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const restore = breakStateDir(stack.stateDir);
    let restored = false;
    try {
      // Green fails: the gate fails and the driver decides to roll back, but cannot record it.
      stack.sim.cluster('green').setFaults('llm', { errorRate: 1 });
      const deadline = performance.now() + 20_000;
      for (let n = 0; stack.gw.traffic.rolloutStall('llm') === null; n++) {
        if (performance.now() > deadline) throw new Error('timed out waiting for the driver to try (and fail) to record the rollback');
        const res = await fetch(`${stack.url}/llm/x${n}`);
        await res.arrayBuffer();
      }
      assert.equal(stack.gw.traffic.rolloutOf('llm')!.phase, 'progressing');
      assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 80, green: 20 }, 'the unsaved rollback is not applied');
      const st = await adminCall(stack, 'GET', '/api/v1/status', undefined, null);
      const app = (st.json['apps'] as Json[]).find((a) => a['name'] === 'llm')!;
      assert.equal(app['rollout_write_error']['action'], 'rollout_failed');
      assert.match(app['rollout_write_error']['message'], /ENOTDIR/);
      assert.equal(app['rollout']['phase'], 'progressing');
      restore();
      restored = true;
      // Writes work again: the next tick records the rollback and applies it.
      await waitFor(() => stack.gw.traffic.rolloutOf('llm')?.phase === 'rolled_back', 10_000, 'the rollback once writes work');
    } finally {
      if (!restored) restore();
    }
    assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 100, green: 0 });
    assert.equal(stack.gw.traffic.rolloutStall('llm'), null);
    const saved = stateFile(stack);
    assert.equal(saved['apps']['llm']['rollout']['phase'], 'rolled_back');
    const audit = auditLines(stack.stateDir);
    assert.deepEqual(audit.map((e) => [e['action'], e['result']]), [
      ['rollout_start', 'ok'],
      ['rollout_failed', 'ok'],
    ]);
    assert.equal(audit[1]!['version'], saved['version']);
  } finally {
    await stack.close();
  }
});

// ---- crash consistency -------------------------------------------------------

function spawnChild(args: string[]): { child: ChildProcess; lines: string[]; stderr: () => string } {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { child, lines, stderr: () => err };
}

async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** The invariant: the state file's version has an `ok` audit entry with that version and the same weights. */
function assertCovered(state: TrafficState | null, events: AuditEvent[], app: string, what: string): void {
  if (state === null) return;
  const weights = state.apps[app]?.weights;
  const ok = events.filter((e) => e.result === 'ok' && e.app === app);
  assert.ok(
    ok.some((e) => JSON.stringify(e.to) === JSON.stringify(weights)),
    `${what}: the state file holds ${JSON.stringify(weights)}, which no audit entry records (last: ${JSON.stringify(ok[0]?.to)})`,
  );
  const ev = events.find((e) => e.result === 'ok' && e.version === state.version);
  assert.ok(ev, `${what}: state version ${state.version} has no audit entry`);
  assert.deepEqual(ev.to, weights, what);
}

test('kill -9 between the audit entry and the state file: the next start marks the entry failed and serves the saved state', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-crash-'));
  const sim = await startSimOnly();
  let gw: Awaited<ReturnType<typeof startGateway>> | null = null;
  try {
    const c = spawnChild(['test/helpers/state-commit-child.ts', dir, '3']);
    await waitFor(() => c.lines.includes('AUDITED') || c.child.exitCode !== null, 15_000, 'the child to audit change 3');
    assert.equal(c.child.exitCode, null, c.stderr());
    await kill9(c.child);

    const store = new FileStateStore(dir);
    const { state } = store.load();
    const events = store.readAudit(100);
    assert.deepEqual(state!.apps['llm']!.weights, { blue: 80, green: 20 }, 'change 3 never reached the state file');
    assert.deepEqual(events.map((e) => [e.id, e.result, e.version]), [[3, 'ok', 3], [2, 'ok', 2], [1, 'ok', 1]]);
    assertCovered(state, events, 'llm', 'after the kill');

    const start = () => startGateway({ config: buildConfig(gatewayDoc(sim, dir)), logger: new LogRecorder(), adminToken: ADMIN_TOKEN, watch: false });
    gw = await start();
    assert.deepEqual(gw.traffic.weightsOf('llm'), { blue: 80, green: 20 });
    const after = new FileStateStore(dir).readAudit(100);
    assert.equal(after[0]!.result, 'failed');
    assert.equal(after[0]!.actor, 'gateway');
    assert.equal(after[0]!.version, 3);
    assert.match(after[0]!.reason, /^not applied: event #3 \(version 3\) was recorded but the state file was not written \(the state file is at version 2\)/);
    // Marked once: another restart adds nothing.
    await gw.close();
    gw = await start();
    assert.deepEqual(new FileStateStore(dir).readAudit(100).map((e) => e.result), ['failed', 'ok', 'ok', 'ok']);
    const r = await gw.traffic.setWeights('llm', { blue: 50, green: 50 }, { force: true, actor: 'test' });
    assert.ok(r.ok, JSON.stringify(r));
    const saved = new FileStateStore(dir).load().state!;
    assert.equal(saved.version, 4, 'version 3 is not given to another change');
    assertCovered(saved, new FileStateStore(dir).readAudit(100), 'llm', 'after the restart');
  } finally {
    await gw?.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kill -9 of a gateway writing traffic changes as fast as it can, at arbitrary points: the state file is always covered by the audit log', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-kill9-loop-'));
  const children: ChildProcess[] = [];
  try {
    // One state dir for all rounds: each gateway starts from what the previous kill left.
    const stateDir = join(dir, 'state');
    for (let round = 0; round < 3; round++) {
      const doc = {
        listen: '127.0.0.1:0',
        admin: { listen: '127.0.0.1:0' },
        state_dir: stateDir,
        clusters: [
          { name: 'blue', endpoints: ['http://127.0.0.1:1'], serve_config: SERVE_YAML },
          { name: 'green', endpoints: ['http://127.0.0.1:2'], serve_config: SERVE_YAML },
        ],
        applications: { '*': { weights: { blue: 100 } } },
      };
      const configPath = join(dir, `gateway-${round}.yaml`);
      writeFileSync(configPath, JSON.stringify(doc)); // JSON is YAML
      const c = spawnChild(['test/helpers/traffic-writer-child.ts', configPath]);
      children.push(c.child);
      // Kill after a varying number of accepted changes; the child keeps writing meanwhile,
      // so the kill lands anywhere in a write.
      const killAfter = 2 + round * 9 + Math.floor(Math.random() * 9);
      await waitFor(() => c.lines.length > killAfter || c.child.exitCode !== null, 30_000, `child ${round} to write`);
      assert.equal(c.child.exitCode, null, c.stderr());
      await kill9(c.child);

      const store = new FileStateStore(stateDir);
      const { state, recovered } = store.load();
      assert.equal(recovered, null, 'the state file is never torn');
      const events = store.readAudit(100_000);
      assert.ok(state !== null);
      assertCovered(state, events, 'llm', `round ${round} (killed after ${c.lines.length - 1} changes)`);
      // Nothing acknowledged was lost: the state holds the last change the child saw succeed,
      // or the one after it (saved, killed before it printed).
      const lastAcked = Number(c.lines.at(-1));
      const saved = state.apps['llm']!.weights['green'];
      assert.ok(saved === lastAcked || saved === (lastAcked === 99 ? 1 : lastAcked + 1), `round ${round}: acknowledged ${lastAcked}, saved ${saved}`);
    }
  } finally {
    for (const c of children) await kill9(c);
    rmSync(dir, { recursive: true, force: true });
  }
});

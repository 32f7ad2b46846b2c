// `serve-gateway traffic …` against a running gateway: tables, --json, and
// exit codes (0 ok, 1 refused, 2 usage, 3 unreachable).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { runTrafficCommand } from '../src/cli/traffic-command.ts';
import { ADMIN_TOKEN, startStack, waitFor } from './helpers/stack.ts';

/** Runs the command, capturing what it prints (stdout via `out`, stderr by interception). */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await runTrafficCommand(args, (s) => (out += s.endsWith('\n') ? s : `${s}\n`));
    return { code, out, err };
  } finally {
    process.stderr.write = write;
  }
}

test('traffic CLI against a gateway', async (t) => {
  const stack = await startStack();
  const saved = process.env['SERVE_GATEWAY_ADMIN_TOKEN'];
  process.env['SERVE_GATEWAY_ADMIN_TOKEN'] = ADMIN_TOKEN;
  const A = ['--admin', stack.admin];
  try {
    await t.test('status prints readable tables', async () => {
      const r = await cli(['status', ...A]);
      assert.equal(r.code, 0, r.err);
      const lines = r.out.split('\n');
      assert.match(lines[0]!, /^APP\s+PREFIX\s+CLUSTER\s+WEIGHT\s+STATUS\s+CAPACITY\s+IN-FLIGHT\s+QUEUED\s+READY$/);
      assert.ok(lines.some((l) => /^llm\s+\/llm\s+blue\s+100%\s+RUNNING\s+8\s+0\s+0\s+yes$/.test(l)), r.out);
      assert.ok(lines.some((l) => /^llm\s+\/llm\s+green\s+0%\s+RUNNING\s+8\s+0\s+0\s+yes$/.test(l)), r.out);
      assert.ok(lines.some((l) => /^CLUSTER\s+ENDPOINTS UP\s+CIRCUIT/.test(l)), r.out);
      assert.ok(lines.some((l) => /^blue\s+2\/2\s+closed\s+reachable/.test(l)), r.out);
      assert.ok(lines.some((l) => /^green\s+1\/1\s+closed\s+reachable/.test(l)), r.out);
    });

    await t.test('status --json prints the API JSON', async () => {
      const r = await cli(['status', '--json', ...A]);
      assert.equal(r.code, 0);
      const doc = JSON.parse(r.out) as { apps: Array<{ name: string; weights: object }> };
      assert.deepEqual(doc.apps.find((a) => a.name === 'llm')!.weights, { blue: 100, green: 0 });
    });

    await t.test('set switches at once; refused sets exit 1 with the reason', async () => {
      let r = await cli(['set', 'llm', 'green=100', '--reason', 'cli test', ...A]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^set: llm now blue=0 green=100/);
      assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 0, green: 100 });
      r = await cli(['set', 'llm', 'blue=50', 'green=40', ...A]);
      assert.equal(r.code, 1);
      assert.match(r.err, /refused \(400 INVALID_WEIGHTS\): weights must sum to 100, got 90/);
      r = await cli(['set', 'nope', 'blue=100', '--json', ...A]);
      assert.equal(r.code, 1);
      assert.equal((JSON.parse(r.out) as { error: { code: string } }).error.code, 'UNKNOWN_APP');
      r = await cli(['set', 'llm', 'blue=100', '--json', ...A]);
      assert.equal(r.code, 0);
      assert.deepEqual((JSON.parse(r.out) as { weights: object }).weights, { blue: 100, green: 0 });
    });

    await t.test('rollout, pause, resume, promote; events', async () => {
      let r = await cli(['rollout', 'llm', '--to', 'green', '--steps', '10,50,100', '--interval', '1h', '--min-requests', '5', '--max-error-rate', '0.1', ...A]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /rollout: llm now blue=90 green=10; rollout progressing \(blue → green at 10%\)/);
      const ro = stack.gw.traffic.rolloutOf('llm')!;
      assert.equal(ro.policy.intervalMs, 3_600_000);
      assert.equal(ro.policy.minRequests, 5);
      assert.equal(ro.policy.maxErrorRate, 0.1);
      r = await cli(['status', ...A]);
      assert.ok(r.out.split('\n').some((l) => /^llm\s+blue\s+green\s+progressing\s+10%\s+\[10\],50,100 \(1\/3\)\s+\S+ m?s\s+50% in 60 min$/.test(l)), r.out);
      // The gate's live values against their thresholds, and why the rollout holds.
      assert.match(r.out, /^ {2}llm gate: requests 0\/5, error rate 0 \(max 0\.1\), p99 - \(max 5\.0 s\), ttfb p99 - \(max off\)$/m);
      assert.match(r.out, /^ {2}llm: holding: 0 of 5 requests; next step to 50% in 60 min at the earliest, after 5 requests$/m);
      assert.match(r.out, /^llm\s+Progressing\s+rollout to green at 10%$/m);
      r = await cli(['rollout', 'llm', '--to', 'green', ...A]);
      assert.equal(r.code, 1);
      assert.match(r.err, /ROLLOUT_IN_PROGRESS/);
      assert.equal((await cli(['pause', 'llm', ...A])).code, 0);
      assert.equal(stack.gw.traffic.rolloutOf('llm')!.phase, 'paused');
      assert.equal((await cli(['pause', 'llm', ...A])).code, 1);
      assert.equal((await cli(['resume', 'llm', ...A])).code, 0);
      r = await cli(['promote', 'llm', ...A]);
      assert.equal(r.code, 0);
      assert.match(r.out, /promote: llm now blue=0 green=100; rollout succeeded/);
      r = await cli(['rollback', 'llm', ...A]);
      assert.equal(r.code, 1);
      assert.match(r.err, /NOT_RUNNING/);
      r = await cli(['events', '--limit', '3', ...A]);
      assert.equal(r.code, 0);
      const lines = r.out.trimEnd().split('\n');
      assert.match(lines[0]!, /^ID\s+WHEN\s+WHO\s+APP\s+ACTION\s+RESULT\s+TO\s+REASON$/);
      assert.equal(lines.length, 4);
      assert.match(lines[1]!, /admin:cli@\S+\s+llm\s+rollout_rollback\s+refused/);
      assert.match(lines[2]!, /rollout_promote\s+ok\s+blue=0 green=100/);
    });

    await t.test('promote passes the readiness gate unless --force', async () => {
      let r = await cli(['rollout', 'llm', '--to', 'blue', '--steps', '50,100', '--interval', '1h', ...A]);
      assert.equal(r.code, 0, r.err);
      stack.sim.cluster('blue').setAppStatus('llm', 'UNHEALTHY');
      const blue = () => stack.gw.reconciler.current!.apps.get('llm')!.targets.find((x) => x.cluster.name === 'blue')!;
      await waitFor(() => blue().serveApp?.status === 'UNHEALTHY', 3000, 'dashboard poll sees UNHEALTHY');
      r = await cli(['promote', 'llm', ...A]);
      assert.equal(r.code, 1);
      assert.match(r.err, /409 NOT_READY\): app "llm" on cluster "blue" is UNHEALTHY, not RUNNING; pass force/);
      r = await cli(['promote', 'llm', '--force', ...A]);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 100, green: 0 });
      stack.sim.cluster('blue').setAppStatus('llm', 'RUNNING');
      await waitFor(() => blue().serveApp?.status === 'RUNNING', 3000, 'dashboard poll sees RUNNING');
    });

    await t.test('usage errors exit 2', async () => {
      assert.equal((await cli([])).code, 2);
      assert.equal((await cli(['set', 'llm', ...A])).code, 2);
      const r = await cli(['set', 'llm', 'green=lots', ...A]);
      assert.equal(r.code, 2);
      assert.match(r.err, /"green=lots" is not CLUSTER=WEIGHT/);
      assert.equal((await cli(['rollout', 'llm', ...A])).code, 2);
      assert.equal((await cli(['rollout', 'llm', '--to', 'green', '--steps', '10,x', ...A])).code, 2);
      assert.equal((await cli(['frobnicate', ...A])).code, 2);
      // A mistyped option is an error, never silently ignored (a rollout with default steps would start).
      const typo = await cli(['rollout', 'llm', '--to', 'green', '--step', '10,100', ...A]);
      assert.equal(typo.code, 2);
      assert.match(typo.err, /unknown option --step for "traffic rollout"/);
      assert.notEqual(stack.gw.traffic.rolloutOf('llm')!.phase, 'progressing', 'no rollout was started');
      assert.equal((await cli(['pause', 'llm', 'default', ...A])).code, 2);
      assert.equal((await cli(['status', '--force', ...A])).code, 2);
      assert.equal((await cli(['pause', ...A])).code, 2);
      assert.equal((await cli(['--help'])).code, 0);
    });

    await t.test('a wrong token is refused (exit 1)', async () => {
      process.env['SERVE_GATEWAY_ADMIN_TOKEN'] = 'wrong';
      try {
        const r = await cli(['set', 'llm', 'blue=100', ...A]);
        assert.equal(r.code, 1);
        assert.match(r.err, /403 FORBIDDEN/);
      } finally {
        process.env['SERVE_GATEWAY_ADMIN_TOKEN'] = ADMIN_TOKEN;
      }
    });

    await t.test('move FROM TO: every app with weight on FROM, at once or as rollouts', async () => {
      let r = await cli(['move', 'blue', 'green', ...A]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^move: llm now blue=0 green=100$/m);
      assert.match(r.out, /^move: default now blue=0 green=100$/m);
      assert.match(r.out, /^2 of 2 app\(s\) moved from blue to green$/m);
      assert.deepEqual(stack.gw.traffic.weightsOf('default'), { blue: 0, green: 100 });
      r = await cli(['move', 'blue', 'green', ...A]);
      assert.equal(r.code, 1);
      assert.match(r.err, /no app sends weight to cluster "blue"; nothing to move/);
      r = await cli(['move', 'green', 'blue', '--rollout', '--steps', '50,100', '--interval', '3600', ...A]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^rollout: llm now blue=50 green=50; rollout progressing \(green → blue at 50%\)$/m);
      assert.equal(stack.gw.traffic.rolloutOf('default')?.phase, 'progressing');
      assert.equal(stack.gw.traffic.rolloutOf('default')?.policy.intervalMs, 3_600_000);
      for (const app of ['llm', 'default']) assert.equal((await cli(['rollback', app, ...A])).code, 0);
    });

    await t.test('status --watch repeats until stopped', async () => {
      const ctl = new AbortController();
      let out = '';
      const frames = () => out.split('\n').filter((l) => l.startsWith('--- every 0.05 s')).length;
      const run = runTrafficCommand(['status', '--watch', '--every', '50ms', ...A], (s) => (out += `${s}\n`), { signal: ctl.signal });
      await waitFor(() => frames() >= 2, 30_000, 'two status frames');
      ctl.abort();
      const r = { code: await run, out };
      assert.equal(r.code, 0);
      assert.match(r.out, /^APP\s+PREFIX\s+CLUSTER/m);
    });

    await t.test('an unreachable admin API exits 3', async () => {
      const srv = createServer();
      await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
      const port = (srv.address() as { port: number }).port;
      await new Promise<void>((resolve) => srv.close(() => resolve()));
      const r = await cli(['status', '--admin', `http://127.0.0.1:${port}`]);
      assert.equal(r.code, 3);
      assert.match(r.err, /cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+/);
    });
  } finally {
    if (saved === undefined) delete process.env['SERVE_GATEWAY_ADMIN_TOKEN'];
    else process.env['SERVE_GATEWAY_ADMIN_TOKEN'] = saved;
    await stack.close();
  }
});

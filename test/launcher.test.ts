// bin/serve-gateway, as a user runs it: Node is started with V8's young generation capped
// (--max-semi-space-size=4) unless NODE_OPTIONS chooses a size, and the startup line names the
// flags in effect. Real processes, a real config, the startup line read from stdout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = new URL('../bin/serve-gateway', import.meta.url).pathname;

const CONFIG = `listen: "127.0.0.1:0"
admin: { listen: "127.0.0.1:0" }
state_dir: ./var
clusters:
  - name: blue
    endpoints: ["http://127.0.0.1:9"]
    serve_config: |
      applications:
        - name: llm
          route_prefix: /llm
          import_path: app:app
          deployments: [{ name: LLM, max_ongoing_requests: 8 }]
shutdown: { drain_delay: 0s, grace_period: 1s }
`;

/** Starts the launcher, returns the node_flags of its 'serve-gateway started' line, stops it. */
async function startedFlags(nodeOptions: string | undefined): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-launcher-'));
  try {
    writeFileSync(join(dir, 'gateway.yaml'), CONFIG);
    const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: nodeOptions };
    if (nodeOptions === undefined) delete env['NODE_OPTIONS'];
    const child = spawn(BIN, ['start', '--config', join(dir, 'gateway.yaml')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const exited = new Promise<number | string | null>((res) => child.once('exit', (code, signal) => res(code ?? signal)));
    // The startup line (stdout), and "listening on" (stderr): the signal handlers are in place after it.
    const line = await new Promise<string | null>((res) => {
      const check = () => {
        const l = out.split('\n').find((x) => x.includes('"serve-gateway started"'));
        if (l !== undefined && err.includes('listening on')) res(l);
      };
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        check();
      });
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        check();
      });
      void exited.then(() => res(null));
    });
    child.kill('SIGTERM');
    assert.equal(await exited, 0, err);
    assert.ok(line !== null, `no startup line; stdout:\n${out}\nstderr:\n${err}`);
    return (JSON.parse(line) as { node_flags: string[] }).node_flags;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the launcher caps the young generation by default', { timeout: 120_000 }, async () => {
  const flags = await startedFlags(undefined);
  assert.ok(flags.includes('--max-semi-space-size=4'), flags.join(' '));
});

test('NODE_OPTIONS that sets a semi-space size wins; other NODE_OPTIONS keep the default', { timeout: 120_000 }, async () => {
  const chosen = await startedFlags('--max-semi-space-size=8');
  assert.deepEqual(chosen.filter((f) => f.includes('semi-space')), ['--max-semi-space-size=8']);
  const other = await startedFlags('--no-warnings');
  assert.ok(other.includes('--no-warnings') && other.includes('--max-semi-space-size=4'), other.join(' '));
});

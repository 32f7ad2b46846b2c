import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runValidateCommand } from './validate-command.ts';

const dir = mkdtempSync(join(tmpdir(), 'gw-validate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

writeFileSync(
  join(dir, 'serve.yaml'),
  `applications:
  - name: llm
    route_prefix: /llm
    import_path: m:app
    deployments:
      - name: Model
        max_ongoing_requests: 4
        autoscaling_config: { min_replicas: 0, max_replicas: 4 }
      - name: Ingress
        num_replicas: 3
        max_ongoing_requests: 16
        max_queued_requests: 20
  - name: default
    route_prefix: /
    import_path: d:app
  - name: internal
    route_prefix: null
    import_path: i:app
`,
);
const GOOD = join(dir, 'good.yaml');
writeFileSync(
  GOOD,
  `clusters:
  - name: blue
    endpoints: ["http://127.0.0.1:8101"]
    serve_config: serve.yaml
  - name: green
    endpoints: ["http://127.0.0.1:8201"]
    dashboard: "http://127.0.0.1:8266"
applications:
  llm: { weights: { blue: 100, green: 0 }, sticky: { header: x-session-id } }
admission: { queue_size: 100, gateway_replicas: 2 }
`,
);
const BAD = join(dir, 'bad.yaml');
writeFileSync(
  BAD,
  `clusters:
  - name: blue
    endpoints: ["127.0.0.1:8101"]
applications:
  llm: { weights: { blue: 50 } }
`,
);

async function run(args: string[]): Promise<{ code: number; text: string }> {
  let text = '';
  const code = await runValidateCommand(args, (s) => (text += s));
  return { code, text };
}

describe('serve-gateway validate', () => {
  it('prints the route table and capacities of a good config', async () => {
    const { code, text } = await run(['--config', GOOD]);
    assert.equal(code, 0, text);
    assert.match(text, /OK/);
    assert.match(text, /cluster blue[^\n]*\n\s+\/llm\s+->\s+llm\n\s+\/\s+->\s+default\n\s+\(no route\)\s+->\s+internal/);
    assert.match(text, /cluster green[^\n]*\n\s+\(no serve_config: applications come from the dashboard http:\/\/127\.0\.0\.1:8266/);
    assert.match(text, /llm\s+blue\s+Ingress\s+16 x 3 = 48 \(24\/gateway\)\s+20\s+serve_config/);
    // floor(5 / 2): what each of the two replicas admits at runtime, so together never more than 5.
    assert.match(text, /default\s+blue\s+\(default\)\s+5 x 1 = 5 \(2\/gateway\)\s+100\s+serve_config/);
    assert.match(text, /\*\s+green\s+\?\s+\?\s+\?\s+dashboard-not-polled/);
    assert.match(text, /llm: weights blue=100 green=0, sticky header:x-session-id/);
  });

  it('prints JSON with --json', async () => {
    const { code, text } = await run(['validate', `--config=${GOOD}`, '--json']);
    assert.equal(code, 0);
    const j = JSON.parse(text);
    assert.equal(j.ok, true);
    assert.deepEqual(j.capacities[0], {
      app: 'llm',
      cluster: 'blue',
      ingressDeployment: 'Ingress',
      maxOngoingRequests: 16,
      replicas: 3,
      limit: 48,
      limitPerGateway: 24,
      queueSize: 20,
      source: 'serve_config',
    });
    assert.deepEqual(j.routes[0], { cluster: 'blue', prefix: '/llm', app: 'llm' });
  });

  it('lists every problem and exits 1 on a bad config', async () => {
    const { code, text } = await run(['--config', BAD]);
    assert.equal(code, 1);
    assert.match(text, /bad\.yaml:3: clusters\[0\]\.endpoints\[0\]: must be an http:\/\/ URL with host and port/);
    assert.match(text, /bad\.yaml:5: applications\.llm\.weights: must sum to 100 \(got 50\)/);
    assert.match(text, /2 problems; config refused/);
    const j = JSON.parse((await run(['--config', BAD, '--json'])).text);
    assert.equal(j.ok, false);
    assert.equal(j.issues.length, 2);
  });

  it('handles --help, bad arguments and a missing file', async () => {
    const help = await run(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.text, /Usage: serve-gateway validate/);
    assert.equal((await run(['--bogus'])).code, 2);
    assert.equal((await run(['--config'])).code, 2);
    const missing = await run(['--config', join(dir, 'nope.yaml')]);
    assert.equal(missing.code, 1);
    assert.match(missing.text, /ENOENT/);
  });
});

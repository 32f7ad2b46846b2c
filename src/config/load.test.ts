import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { formatIssues, loadConfigFile, parseConfigText, restartRequiredIssues, splitKeyPath } from './load.ts';

const dir = mkdtempSync(join(tmpdir(), 'gw-load-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('loadConfigFile', () => {
  it('loads a valid file and resolves serve_config and state_dir next to it', async () => {
    write('serve.yaml', 'applications:\n  - name: app\n    route_prefix: /app\n    import_path: a:b\n');
    const p = write(
      'ok.yaml',
      'clusters:\n  - name: blue\n    endpoints: ["http://127.0.0.1:8101"]\n    serve_config: serve.yaml\n',
    );
    const r = await loadConfigFile(p);
    assert.ok(r.ok);
    assert.equal(r.config.stateDir, join(dir, 'var'));
    assert.equal(r.config.clusters[0]?.serveApps?.[0]?.routePrefix, '/app');
  });

  it('reports a YAML syntax error with its line', async () => {
    const p = write('syntax.yaml', 'listen: "0.0.0.0:8000"\nclusters:\n  - name: blue\n    endpoints: [http://a:1\n');
    const r = await loadConfigFile(p);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.ok(r.issues.length >= 1);
    assert.equal(r.issues[0]?.file, p);
    assert.match(r.issues[0]?.message ?? '', /YAML syntax error at line \d+, column \d+/);
    assert.equal(typeof r.issues[0]?.line, 'number');
  });

  it('reports duplicate keys (a silent override otherwise)', async () => {
    const p = write('dup.yaml', 'listen: "a:1"\nlisten: "b:2"\nclusters: []\n');
    const r = await loadConfigFile(p);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.issues[0]?.message ?? '', /line 2.*unique|unique.*line 2|YAML syntax error at line 2/i);
  });

  it('reports a missing file', async () => {
    const r = await loadConfigFile(join(dir, 'nope.yaml'));
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.issues[0]?.message ?? '', /cannot read the config file: ENOENT/);
  });

  it('adds the line of the offending key to validation issues', () => {
    const text = [
      'clusters:', // 1
      '  - name: blue', // 2
      '    endpoints:', // 3
      '      - http://127.0.0.1:1', // 4
      '      - ftp://x:2', // 5
      'applications:', // 6
      '  llm:', // 7
      '    weights: { blue: 90 }', // 8
      '    stiky: { header: x }', // 9
    ].join('\n');
    const r = parseConfigText(text, 'gw.yaml', dir);
    assert.equal(r.ok, false);
    if (r.ok) return;
    const lines = Object.fromEntries(r.issues.map((i) => [i.path, i.line]));
    assert.deepEqual(lines, {
      'clusters[0].endpoints[1]': 5,
      'applications.llm.weights': 8,
      'applications.llm.stiky': 9,
    });
    assert.equal(
      formatIssues(r.issues),
      [
        'gw.yaml:9: applications.llm.stiky: unknown key (did you mean "sticky"?)',
        'gw.yaml:8: applications.llm.weights: must sum to 100 (got 90)',
        'gw.yaml:5: clusters[0].endpoints[1]: must be an http:// URL with host and port (got "ftp://x:2")',
      ].join('\n'),
    );
  });

  it('refuses several YAML documents', () => {
    const r = parseConfigText('a: 1\n---\nb: 2\n', 'gw.yaml', dir);
    assert.equal(r.ok, false);
  });
});

describe('formatIssues / splitKeyPath', () => {
  it('formats one line per issue', () => {
    assert.equal(
      formatIssues([
        { file: 'a.yaml', path: 'x.y', message: 'bad' },
        { file: 'a.yaml', path: '', message: 'empty' },
      ]),
      'a.yaml: x.y: bad\na.yaml: empty',
    );
  });
  it('splits key paths', () => {
    assert.deepEqual(splitKeyPath('clusters[1].endpoints[0]'), ['clusters', 1, 'endpoints', 0]);
    assert.deepEqual(splitKeyPath('applications.*.weights'), ['applications', '*', 'weights']);
  });
});

describe('restartRequiredIssues (reload of keys applied only at start)', () => {
  const base = 'clusters:\n  - name: blue\n    endpoints: ["http://127.0.0.1:8101"]\n';
  const config = (extra: string) => {
    const r = parseConfigText(`${base}${extra}`, 'gw.yaml', dir);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
    return r.config;
  };
  const running = config('listen: "127.0.0.1:8000"\nadmin:\n  listen: "127.0.0.1:9901"\nstate_dir: var\n');

  it('no issue when none of them changed (other keys may change)', () => {
    const next = config('listen: "127.0.0.1:8000"\nadmin:\n  listen: "127.0.0.1:9901"\n  allowed_hosts: [gw.example]\nstate_dir: ./var\ndashboard_poll_interval: 5s\n');
    assert.deepEqual(restartRequiredIssues(running, next, 'gw.yaml'), []);
  });

  it('names each changed key: listen, admin.listen, admin.token_env, state_dir, workers, server.engine', () => {
    const next = config('listen: "127.0.0.1:8001"\nadmin:\n  listen: "[::1]:9902"\n  token_env: OTHER_TOKEN\nstate_dir: /tmp/elsewhere\nworkers: 2\nserver: { engine: node }\n');
    const issues = restartRequiredIssues(running, next, 'gw.yaml');
    assert.deepEqual(issues.map((i) => i.path), ['listen', 'admin.listen', 'admin.token_env', 'state_dir', 'workers', 'server.engine']);
    assert.equal(
      issues[0]!.message,
      'changed from "127.0.0.1:8000" to "127.0.0.1:8001": this key needs a restart; the running gateway keeps "127.0.0.1:8000" (restore it, or restart the gateway)',
    );
    assert.match(issues[1]!.message, /^changed from "127\.0\.0\.1:9901" to "\[::1\]:9902": this key needs a restart/);
    assert.match(formatIssues(issues), /^gw\.yaml: state_dir: changed from ".*\/var" to "\/tmp\/elsewhere": this key needs a restart/m);
  });
});

describe('rollout bounds in the config file', () => {
  it('refuses an interval of 11,400 years (and other unbounded values) naming the key path and line', () => {
    const text = [
      'clusters:', // 1
      '  - name: blue', // 2
      '    endpoints: ["http://127.0.0.1:1"]', // 3
      'applications:', // 4
      '  "*":', // 5
      '    rollout:', // 6
      '      interval: 99932400h', // 7
      '  llm:', // 8
      '    rollout:', // 9
      '      max_p99_latency: 2h', // 10
      '      max_ttfb_p99: 61m', // 11
      '      min_requests: 5000000', // 12
    ].join('\n');
    const r = parseConfigText(text, 'gw.yaml', dir);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(
      formatIssues(r.issues),
      [
        'gw.yaml:7: applications.*.rollout.interval: must be at most 24h (got "99932400h")',
        'gw.yaml:10: applications.llm.rollout.max_p99_latency: must be at most 1h (got "2h")',
        'gw.yaml:11: applications.llm.rollout.max_ttfb_p99: must be at most 1h (got "61m")',
        'gw.yaml:12: applications.llm.rollout.min_requests: must be an integer in 0..1000000 (got 5000000)',
      ].join('\n'),
    );
  });

  it('accepts the bounds themselves', () => {
    const r = parseConfigText(
      'clusters:\n  - name: blue\n    endpoints: ["http://127.0.0.1:1"]\napplications:\n  "*":\n    rollout: { interval: 24h, max_p99_latency: 1h, max_ttfb_p99: 60m, min_requests: 1000000 }\n',
      'gw.yaml',
      dir,
    );
    assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
    assert.equal(r.config.defaults.rollout.intervalMs, 86_400_000);
  });
});

describe('admin.allowed_hosts', () => {
  const parse = (hosts: string) => parseConfigText(`clusters:\n  - name: blue\n    endpoints: ["http://127.0.0.1:1"]\nadmin:\n  allowed_hosts: ${hosts}\n`, 'gw.yaml', dir);
  it('keeps names lower-cased, IPv6 without brackets', () => {
    const r = parse('["Gateway-Admin.ops.svc", "gw.example.com.", "10.0.0.7", "[fd00::7]"]');
    assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
    assert.deepEqual(r.config.admin.allowedHosts, ['gateway-admin.ops.svc', 'gw.example.com', '10.0.0.7', 'fd00::7']);
  });
  it('absent: no extra names', () => {
    const r = parse('null');
    assert.ok(r.ok);
    assert.equal(r.config.admin.allowedHosts, undefined);
  });
  it('refuses ports, wildcards, URLs and non-lists, naming the entry', () => {
    const r = parse('["gw.example:9901", "*.example.com", "http://gw", 7]');
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual(r.issues.map((i) => i.path), ['admin.allowed_hosts[0]', 'admin.allowed_hosts[1]', 'admin.allowed_hosts[2]', 'admin.allowed_hosts[3]']);
    assert.match(r.issues[0]!.message, /host name or IP address without port or wildcard \(got "gw\.example:9901"\)/);
    const notList = parse('gw.example');
    assert.equal(notList.ok, false);
    if (!notList.ok) assert.match(notList.issues[0]!.message, /must be a list of host names/);
  });
});

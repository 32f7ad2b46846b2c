import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { formatIssues, loadConfigFile, parseConfigText, splitKeyPath } from './load.ts';

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

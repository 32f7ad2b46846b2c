// docs/helm.md's values table is charts/serve-gateway/values.yaml: every value
// is documented with its default, and nothing documented is missing from the
// chart. A key whose value is a map is documented as one row when its content
// is free-form (config, resources, probes, ...), else key by key.
// On a mismatch the expected key and default cells are printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';

const ROOT = resolve(import.meta.dirname, '..');
const values = parse(readFileSync(join(ROOT, 'charts/serve-gateway/values.yaml'), 'utf8')) as Record<string, unknown>;
const schema = JSON.parse(readFileSync(join(ROOT, 'charts/serve-gateway/values.schema.json'), 'utf8')) as { properties: Record<string, unknown> };
const doc = readFileSync(join(ROOT, 'docs/helm.md'), 'utf8');

/** Free-form maps and lists: one row each. */
const OPAQUE = new Set(['config', 'resources', 'podSecurityContext', 'securityContext', 'livenessProbe', 'readinessProbe', 'ingress.annotations', 'ingress.hosts', 'affinity', 'grafanaDashboard.labels']);

function defaultCell(x: unknown): string {
  if (typeof x === 'string') return x === '' ? '`""`' : `\`${x}\``;
  const flow = stringify(x, { collectionStyle: 'flow' }).trim();
  return x !== null && typeof x === 'object' && flow.length > 60 ? 'see values.yaml' : `\`${flow}\``;
}

function expectedRows(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (o: Record<string, unknown>, pre: string) => {
    for (const [k, x] of Object.entries(o)) {
      const p = pre + k;
      if (x !== null && typeof x === 'object' && !Array.isArray(x) && Object.keys(x).length > 0 && !OPAQUE.has(p)) walk(x as Record<string, unknown>, `${p}.`);
      else out.set(p, defaultCell(x));
    }
  };
  walk(values, '');
  return out;
}

/** Rows of the table under "## Values": key → default cell (keys not in values.yaml are marked "(unset)"). */
function documentedRows(): Map<string, string> {
  const section = doc.slice(doc.indexOf('\n## Values'));
  const end = section.indexOf('\n## ', 5);
  const out = new Map<string, string>();
  for (const line of (end === -1 ? section : section.slice(0, end)).split('\n')) {
    const m = /^\| `([A-Za-z0-9_.]+)`(?: \*\*\[contract\]\*\*)? \| (.*?) \|.*\|$/.exec(line);
    if (m) out.set(m[1]!, m[2]!.trim());
  }
  return out;
}

test('docs/helm.md documents every value of values.yaml with its default', () => {
  const want = expectedRows();
  const got = documentedRows();
  const problems: string[] = [];
  for (const [k, cell] of want) {
    if (!got.has(k)) problems.push(`missing: ${k}`);
    else if (got.get(k) !== cell) problems.push(`${k}: documented ${got.get(k)}, values.yaml has ${cell}`);
  }
  for (const [k, cell] of got) {
    if (want.has(k)) continue;
    // An optional value the chart reads but values.yaml leaves out: documented as unset, allowed by the schema.
    const top = k.split('.');
    const inSchema = top.reduce<unknown>((s, part) => (s as { properties?: Record<string, unknown> } | undefined)?.properties?.[part], schema) !== undefined;
    if (cell !== '(unset)' || !inSchema) problems.push(`documented but not in values.yaml: ${k}`);
  }
  if (problems.length > 0) {
    const rows = [...want].map(([k, c]) => `| \`${k}\` | ${c} | … |`).join('\n');
    assert.fail(`${problems.join('\n')}\n\nexpected rows (key, default):\n${rows}`);
  }
});

test('the SPEC §10 contract values are in values.yaml and marked [contract] in docs/helm.md', () => {
  const contract = ['replicaCount', 'image.repository', 'image.tag', 'config', 'adminToken.existingSecret', 'rbac.create', 'podDisruptionBudget.enabled', 'autoscaling.enabled', 'serviceMonitor.enabled', 'ingress.enabled', 'ingress.hosts', 'gatewayAPI.enabled'];
  const want = expectedRows();
  for (const k of contract) {
    assert.ok(want.has(k), `values.yaml has ${k}`);
    assert.match(doc, new RegExp(`^\\| \`${k.replace(/\./g, '\\.')}\` \\*\\*\\[contract\\]\\*\\* \\|`, 'm'), `docs/helm.md marks ${k} [contract]`);
  }
});

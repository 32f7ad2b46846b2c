// Docs that are true (issue 11): docs/configuration.md names exactly the keys
// the schema accepts, with the schema's defaults; the README's list of
// x-gateway-flag values is the ERRORS table's; no doc sends the reader to a
// file outside the repository, and every relative link resolves. (Metrics:
// src/metrics/instruments.test.ts; the ERRORS table ⇔ docs/errors.md:
// test/architecture.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { validateConfig } from '../src/config/schema.ts';
import { ERRORS } from '../src/core/errors.ts';

const ROOT = resolve(import.meta.dirname, '..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

/** Table rows of docs/configuration.md: full key path → default cell, by the `### ` section they are under. */
function documentedKeys(): Map<string, { default: string; line: number }> {
  const prefixes: Array<[RegExp, string]> = [
    [/^### Top level/, ''],
    [/^### `clusters\[\]`/, 'clusters[].'],
    [/^### `applications`/, 'applications.'],
    [/^### `(admission|upstream|kubernetes|server|health|retry|access_log)`/, '$1.'],
  ];
  const out = new Map<string, { default: string; line: number }>();
  let prefix: string | null = null;
  read('docs/configuration.md').split('\n').forEach((line, i) => {
    if (line.startsWith('#')) {
      prefix = null;
      for (const [re, p] of prefixes) {
        const m = re.exec(line);
        if (m !== null) prefix = p.replace('$1', m[1] ?? '');
      }
      return;
    }
    if (prefix === null || !line.startsWith('| `')) return;
    const cells = line.split(' | ');
    const names = [...cells[0]!.matchAll(/`([a-z_.[\]]+)`/g)].map((m) => m[1]!);
    for (const n of names) out.set(prefix + n, { default: cells[2]?.trim() ?? '', line: i + 1 });
  });
  return out;
}

/** Every key the schema accepts, read from the key lists in src/config/schema.ts. */
function schemaKeys(): Set<string> {
  const src = read('src/config/schema.ts');
  const list = (text: string) => [...text.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]!);
  const constList = (name: string) => {
    const m = new RegExp(`const ${name} = \\[([^\\]]*)\\]`, 's').exec(src);
    assert.ok(m, `${name} not found in schema.ts`);
    return list(m[1]!);
  };
  const keys = new Set<string>(constList('TOP_KEYS'));
  for (const m of src.matchAll(/section\(doc, '([a-z_]+)', \[([^\]]*)\]/gs)) for (const k of list(m[2]!)) keys.add(`${m[1]}.${k}`);
  for (const k of constList('KUBERNETES_KEYS')) keys.add(`kubernetes.${k}`);
  for (const k of constList('GATEWAY_API_KEYS')) keys.add(`kubernetes.gateway_api.${k}`);
  for (const k of constList('CLUSTER_KEYS')) keys.add(`clusters[].${k}`);
  for (const k of constList('APP_KEYS')) keys.add(`applications.${k}`);
  for (const k of constList('ROLLOUT_KEYS')) keys.add(`applications.rollout.${k}`);
  return keys;
}

test('docs/configuration.md documents every config key the schema accepts, and no other', () => {
  const doc = documentedKeys();
  const schema = schemaKeys();
  assert.ok(doc.size > 40 && schema.size > 40, `parsed ${doc.size} documented and ${schema.size} schema keys`);
  const documented = (k: string) => doc.has(k) || [...doc.keys()].some((d) => d.startsWith(`${k}.`) || d.startsWith(`${k}[]`));
  const missing = [...schema].filter((k) => !documented(k));
  assert.deepEqual(missing, [], 'accepted by the schema, missing from docs/configuration.md');
  const unknown = [...doc.keys()].filter((k) => !schema.has(k));
  assert.deepEqual(unknown, [], 'in docs/configuration.md, unknown to the schema');
});

/** The validated config as comparable JSON (Maps as entries). */
function validated(doc: Record<string, unknown>): string {
  const r = validateConfig(doc, 'docs-truth.yaml', ROOT, (p) => readFileSync(p, 'utf8'));
  if (!r.ok) throw new Error(r.issues.map((i) => `${i.path}: ${i.message}`).join('; '));
  return JSON.stringify(r.config, (_k, v: unknown) => (v instanceof Map ? [...v.entries()] : v));
}

test('the defaults in docs/configuration.md are the schema\'s: setting a key to its documented default changes nothing', () => {
  const base = () => ({ clusters: [{ name: 'blue', endpoints: ['http://127.0.0.1:8101'] }] }) as Record<string, unknown>;
  const plain = validated(base());
  let checked = 0;
  const wrong: string[] = [];
  for (const [key, { default: cell, line }] of documentedKeys()) {
    // Only a default that is one literal (`30s`, `[5, 25, 50, 100]`, `rollback`…); computed or absent ones are prose.
    const m = /^`([^`]+)`(?:\s*\(.*\))?$/.exec(cell);
    if (m === null || key.startsWith('clusters[]') || key.startsWith('kubernetes.')) continue;
    const value: unknown = parseYaml(m[1]!);
    const doc = base();
    const path = key.startsWith('applications.') ? ['applications', '*', ...key.slice('applications.'.length).split('.')] : key.split('.');
    let at = doc;
    for (const p of path.slice(0, -1)) at = (at[p] ??= {}) as Record<string, unknown>;
    at[path.at(-1)!] = value;
    let got: string;
    try {
      got = validated(doc);
    } catch (err) {
      wrong.push(`${key} (line ${line}): the documented default ${m[1]} is refused: ${(err as Error).message}`);
      continue;
    }
    if (got !== plain) wrong.push(`${key} (line ${line}): the documented default ${m[1]} is not the schema's default`);
    checked++;
  }
  assert.deepEqual(wrong, []);
  assert.ok(checked >= 30, `only ${checked} defaults checked`);
});

test('the README lists every x-gateway-flag of the ERRORS table, and no other', () => {
  const readme = read('README.md');
  const para = /Local replies carry `x-gateway-flag`:([\s\S]*?)See \[docs\/errors\.md\]/.exec(readme);
  assert.ok(para, 'the README paragraph on x-gateway-flag');
  const listed = new Set([...para[1]!.matchAll(/`([A-Z]{2,3})`/g)].map((m) => m[1]!));
  const flags = new Set(Object.values(ERRORS).map((e) => e.flag).filter((f) => /^[A-Z]+$/.test(f)));
  assert.deepEqual([...listed].sort(), [...flags].sort());
  const errorsDoc = read('docs/errors.md');
  for (const f of flags) assert.match(errorsDoc, new RegExp(`\\| ${f} \\|`), `docs/errors.md has no row for ${f}`);
});

test('no doc links outside the repository; every relative link resolves', () => {
  const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const bad: string[] = [];
  for (const f of files) {
    const text = read(f);
    text.split('\n').forEach((line, i) => {
      if (/\.\.\/shared\b|\bshared\/(design|reference)\b/.test(line)) bad.push(`${f}:${i + 1}: refers to the developers' shared/ folder`);
      for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.split('#', 1)[0]!;
        if (target === '' || /^[a-z]+:/.test(target)) continue;
        const abs = resolve(dirname(join(ROOT, f)), target);
        if (relative(ROOT, abs).startsWith('..')) bad.push(`${f}:${i + 1}: ${m[1]} points outside the repository`);
        else if (!existsSync(abs)) bad.push(`${f}:${i + 1}: ${m[1]} does not exist`);
      }
    });
  }
  assert.deepEqual(bad, []);
});

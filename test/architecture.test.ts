// Keeps docs/architecture.md and docs/errors.md true: the import rules between
// src/ folders, no import cycles, the pure decision files, who may use which
// third-party package, and the ERRORS table ⇔ docs/errors.md. Plain regex
// parsing of import lines; no TypeScript compiler API.
//
// Run: node --test test/architecture.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERRORS, type ErrorCode } from '../src/core/errors.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

// ---------------------------------------------------------------------------
// Parsing

interface Edge {
  /** Importing file, src-relative with '/' ("proxy/pipeline.ts"). */
  readonly from: string;
  /** The specifier as written. */
  readonly spec: string;
  /** Resolved src-relative file for a relative import, else null (package or node: builtin). */
  readonly to: string | null;
  /** `import type …` / `export type … from`: erased, no runtime edge. */
  readonly typeOnly: boolean;
}

interface SourceFile {
  readonly path: string;
  /** Folder under src/ ("proxy"), or the file's stem for files at the top ("main"). */
  readonly folder: string;
  /** Text with comments removed. */
  readonly code: string;
  readonly edges: readonly Edge[];
}

function listSources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const abs = join(dir, name);
    if (statSync(abs).isDirectory()) out.push(...listSources(abs));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(abs);
  }
  return out.sort();
}

function toSrcPath(abs: string): string {
  return relative(SRC, abs).split(sep).join('/');
}

function folderOf(path: string): string {
  const slash = path.indexOf('/');
  return slash === -1 ? path.replace(/\.ts$/, '') : path.slice(0, slash);
}

/** Removes block comments and // comments (not the // of "http://"). Good enough for our sources. */
function stripComments(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, ' '))
    .split('\n')
    .map((line) => line.replace(/(^|[^:\w'"`\\])\/\/.*$/, '$1'))
    .join('\n');
}

const IMPORT_FROM = /^[ \t]*import[ \t]+(type[ \t]+)?([\w$*{},\s]+?)\s+from\s*['"]([^'"]+)['"]/gm;
const EXPORT_FROM = /^[ \t]*export[ \t]+(type[ \t]+)?(\*(?:\s+as\s+[\w$]+)?|\{[^}]*\})\s*from\s*['"]([^'"]+)['"]/gm;
const IMPORT_BARE = /^[ \t]*import[ \t]*['"]([^'"]+)['"]/gm;
const IMPORT_DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
/** Every line that starts an import statement (to check nothing was missed). */
const IMPORT_START = /^[ \t]*import[ \t]*(?:type[ \t]+)?[\w$*{'"]/gm;

function parseFile(abs: string): SourceFile {
  const path = toSrcPath(abs);
  const code = stripComments(readFileSync(abs, 'utf8'));
  const edges: Edge[] = [];
  const add = (spec: string, typeOnly: boolean) => {
    let to: string | null = null;
    if (spec.startsWith('.')) {
      const target = resolve(dirname(abs), spec);
      assert.ok(target.startsWith(SRC + sep), `${path}: "${spec}" points outside src/`);
      assert.ok(spec.endsWith('.ts'), `${path}: relative import "${spec}" must name the .ts file`);
      assert.ok(existsSync(target), `${path}: "${spec}" does not exist`);
      to = toSrcPath(target);
    }
    edges.push({ from: path, spec, to, typeOnly });
  };
  let statements = 0;
  for (const m of code.matchAll(IMPORT_FROM)) {
    statements++;
    add(m[3]!, m[1] !== undefined);
  }
  for (const m of code.matchAll(IMPORT_BARE)) {
    statements++;
    add(m[1]!, false);
  }
  for (const m of code.matchAll(EXPORT_FROM)) add(m[3]!, m[1] !== undefined);
  for (const m of code.matchAll(IMPORT_DYNAMIC)) add(m[1]!, false);
  const starts = [...code.matchAll(IMPORT_START)].length;
  assert.equal(statements, starts, `${path}: ${starts} import statements but ${statements} parsed; the parser missed one`);
  return { path, folder: folderOf(path), code, edges };
}

const FILES: readonly SourceFile[] = listSources(SRC).map(parseFile);
const BY_PATH = new Map(FILES.map((f) => [f.path, f]));
const EDGES: readonly Edge[] = FILES.flatMap((f) => f.edges);
const INTERNAL = EDGES.filter((e) => e.to !== null);

function packageOf(spec: string): string {
  if (spec.startsWith('node:')) return spec;
  const parts = spec.split('/');
  return spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

/** "folder" or "folder/file.ts" or "main" matches a file. */
function matches(pattern: string, path: string): boolean {
  return pattern.endsWith('.ts') ? path === pattern : folderOf(path) === pattern;
}

// ---------------------------------------------------------------------------
// Rules (docs/architecture.md, "Import rules in force")

/**
 * May import, besides its own folder. `value`: any import; `typeOnly`: only
 * `import type` (no runtime edge). A folder missing from both lists is forbidden.
 */
const FOLDER_RULES: Readonly<Record<string, { readonly value: readonly string[]; readonly typeOnly: readonly string[] }>> = {
  core: { value: [], typeOnly: [] },
  // route-table.ts derives the path with core/request-target.ts (shared with the simulator).
  routing: { value: ['core'], typeOnly: [] },
  metrics: { value: [], typeOnly: [] },
  admission: { value: ['core'], typeOnly: [] },
  config: { value: ['core'], typeOnly: [] },
  // prober.ts takes the runtime cluster objects it probes as parameters.
  health: { value: ['core'], typeOnly: ['config', 'upstream'] },
  // endpoint.ts / cluster.ts hold EndpointHealth and ask outlier.ts (file rule below).
  upstream: { value: ['core', 'health'], typeOnly: ['config'] },
  // The reconciler creates the long-lived Limiter and UpstreamCluster objects.
  control: { value: ['core', 'routing', 'admission', 'upstream'], typeOnly: ['config', 'metrics'] },
  // The data plane reads what the snapshot hands it; it never calls into control, admission or metrics modules.
  proxy: { value: ['core', 'routing', 'health', 'upstream'], typeOnly: ['admission', 'config', 'control', 'metrics'] },
  // The admin API sees the Gateway (type) and reads through it.
  admin: { value: ['core', 'config', 'health', 'control', 'metrics', 'kubernetes'], typeOnly: ['main'] },
  // Kubernetes mode: watches and views; decisions go to main, which applies them through control.
  kubernetes: { value: ['core', 'config'], typeOnly: [] },
  // The simulator is its own product surface: it shares only config parsing with the gateway.
  sim: { value: ['core', 'config'], typeOnly: [] },
  cli: { value: ['core', 'config', 'main', 'sim', 'kubernetes'], typeOnly: [] },
  // A data-plane worker thread (`workers` > 1) composes what main composes for its data plane, nothing of the control plane.
  workers: { value: ['core', 'admission', 'control', 'health', 'metrics', 'proxy'], typeOnly: [] },
  main: { value: ['core', 'config', 'control', 'routing', 'admission', 'upstream', 'health', 'proxy', 'admin', 'metrics', 'kubernetes', 'workers'], typeOnly: [] },
};

/** Where an importing folder may only reach one file of the target folder. */
const ONLY_FILE: ReadonlyArray<{ readonly from: string; readonly folder: string; readonly file: string }> = [
  { from: 'upstream', folder: 'health', file: 'health/outlier.ts' },
  { from: 'proxy', folder: 'health', file: 'health/outlier.ts' },
  { from: 'admin', folder: 'health', file: 'health/outlier.ts' },
];

/** Modules only the listed importers (other than their own folder) may import at runtime. */
const RUNTIME_IMPORTERS: Readonly<Record<string, readonly string[]>> = {
  'main.ts': ['cli'],
  'control/reconciler.ts': ['main', 'workers'],
  'control/traffic-controller.ts': ['main'],
  'control/state-store.ts': ['main'],
  'health/prober.ts': ['main'],
  'proxy/pipeline.ts': ['main', 'workers'],
  'proxy/data-server.ts': ['main', 'workers'],
  'admin/api.ts': ['main'],
};

/** Third-party packages and I/O builtins: who may import them (folder, or one file). */
const PACKAGE_OWNERS: Readonly<Record<string, readonly string[]>> = {
  fastify: ['admin'],
  'prom-client': ['metrics'],
  pino: ['main', 'cli', 'workers'],
  opossum: ['health/prober.ts'],
  '@kubernetes/client-node': ['kubernetes/watch.ts', 'kubernetes/coordination.ts'],
  // core/llhttp.ts loads undici's WebAssembly build of llhttp (a file, by createRequire; no import).
  undici: ['upstream', 'proxy', 'health/prober.ts', 'core/llhttp.ts'],
  yaml: ['config', 'sim'],
  // node:http servers: the data-plane listener (proxy/data-server.ts, for main and the workers) and the simulator; proxy otherwise only for types.
  'node:http': ['main', 'sim', 'proxy', 'workers'],
  // Raw TCP: the upgrade splice and the opt-in lean HTTP/1.1 client (upstream.client: lean) dial Serve
  // themselves, the opt-in lean server (server.engine: lean) listens itself; everything else goes
  // through undici and node:http. The pipeline and the listener name its Socket type, and so does
  // the lean engines' shared direct write (core/socket-write.ts).
  'node:net': ['main', 'proxy/upgrade.ts', 'upstream/h1-client.ts', 'proxy/h1-server.ts', 'proxy/pipeline.ts', 'proxy/data-server.ts', 'proxy/downstream.ts', 'core/socket-write.ts'],
};
/** Of PACKAGE_OWNERS, importers that may only use `import type`. */
const PACKAGE_TYPE_ONLY: Readonly<Record<string, readonly string[]>> = {
  'node:http': ['proxy', 'workers'],
  'node:net': ['main', 'proxy/pipeline.ts', 'proxy/data-server.ts', 'proxy/downstream.ts', 'core/socket-write.ts'],
};
/**
 * Of PACKAGE_TYPE_ONLY, files that may import values after all: the pipeline subclasses
 * IncomingMessage/ServerResponse (a slot for the request context, so its listeners are shared
 * functions); it still creates no server. The lean server takes node:http's status texts and
 * header-size limit, so both engines answer alike.
 */
const PACKAGE_VALUE_EXCEPTIONS: Readonly<Record<string, readonly string[]>> = {
  'node:http': ['proxy/pipeline.ts', 'proxy/data-server.ts', 'proxy/h1-server.ts'],
};

/** Decision files: no I/O libraries, no clock, no randomness, no global timers. */
const PURE_FILES: readonly string[] = [
  'core/errors.ts',
  'core/request-target.ts',
  'core/admission-share.ts',
  'routing/route-table.ts',
  'routing/traffic-split.ts',
  'admission/limiter.ts', // timers only through the injected Clock
  'admission/permits.ts', // shared counters: Atomics on a SharedArrayBuffer, no I/O
  'health/outlier.ts',
  'upstream/balancer.ts',
  'upstream/retry-policy.ts',
  'control/snapshot.ts',
  'control/rollout.ts',
  'control/traffic-state.ts',
  'control/step-stats.ts',
  'kubernetes/upgrade-policy.ts',
  'kubernetes/gateway-api.ts',
  'core/gateway-rule.ts',
  'routing/gateway-routes.ts',
];
const IMPURE_MODULES = [
  'node:http',
  'node:https',
  'node:http2',
  'node:net',
  'node:tls',
  'node:dgram',
  'node:fs',
  'node:fs/promises',
  'node:child_process',
  'node:worker_threads',
  'undici',
  'prom-client',
  'pino',
  'fastify',
  'opossum',
  '@kubernetes/client-node',
];
const IMPURE_CALLS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bDate\.now\s*\(/, 'Date.now()'],
  [/\bnew Date\(\s*\)/, 'new Date()'],
  [/\bperformance\.now\s*\(/, 'performance.now()'],
  [/\bMath\.random\s*\(/, 'Math.random()'],
  [/\bcrypto\.random\w*\s*\(|\brandomUUID\s*\(|\brandomBytes\s*\(/, 'crypto randomness'],
  [/(?<![\w$.])setTimeout\s*\(/, 'setTimeout()'],
  [/(?<![\w$.])setInterval\s*\(/, 'setInterval()'],
  [/(?<![\w$.])setImmediate\s*\(/, 'setImmediate()'],
  [/\bprocess\.(?:env|hrtime|nextTick)\b/, 'process.*'],
];

/**
 * Import cycles that exist today only through `import type` (no runtime
 * cycle). A new cycle, or one of these becoming wider, fails.
 */
const KNOWN_TYPE_CYCLES: ReadonlyArray<readonly string[]> = [
  // admin/* take the Gateway object (type) from main.ts, which starts the admin API.
  ['main.ts', 'admin/api.ts', 'admin/status.ts'],
];

// ---------------------------------------------------------------------------
// Graph helpers

/** Strongly connected components with more than one node, or a self-loop. */
function cycles(nodes: readonly string[], next: (n: string) => readonly string[]): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    on.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || next(v).includes(v)) out.push(comp.sort());
    }
  };
  for (const n of nodes) if (!idx.has(n)) visit(n);
  return out;
}

function describe(e: Edge): string {
  return `${e.from} → ${e.spec}${e.typeOnly ? ' (import type)' : ''}`;
}

// ---------------------------------------------------------------------------
// Import tests

test('the parser sees the source tree', () => {
  assert.ok(FILES.length >= 40, `only ${FILES.length} files under src/`);
  assert.ok(BY_PATH.has('main.ts') && BY_PATH.has('proxy/pipeline.ts') && BY_PATH.has('core/errors.ts'));
  // Sanity: a known runtime edge and a known type-only edge are seen as such.
  assert.ok(INTERNAL.some((e) => e.from === 'control/reconciler.ts' && e.to === 'upstream/cluster.ts' && !e.typeOnly));
  assert.ok(INTERNAL.some((e) => e.from === 'proxy/pipeline.ts' && e.to === 'control/snapshot.ts' && e.typeOnly));
  for (const f of FILES) assert.ok(f.folder in FOLDER_RULES, `src/${f.path}: folder "${f.folder}" has no row in FOLDER_RULES; add one`);
});

test('no runtime import cycle between files', () => {
  const next = new Map<string, string[]>();
  for (const e of INTERNAL) if (!e.typeOnly) (next.get(e.from) ?? next.set(e.from, []).get(e.from)!).push(e.to!);
  const found = cycles([...BY_PATH.keys()], (n) => next.get(n) ?? []);
  assert.deepEqual(found, [], `runtime import cycles: ${found.map((c) => c.join(' ↔ ')).join('; ')}`);
});

test('no import cycle between files, counting import type, beyond the known ones', () => {
  const next = new Map<string, string[]>();
  for (const e of INTERNAL) (next.get(e.from) ?? next.set(e.from, []).get(e.from)!).push(e.to!);
  const found = cycles([...BY_PATH.keys()], (n) => next.get(n) ?? []);
  const unexpected = found.filter((c) => !KNOWN_TYPE_CYCLES.some((k) => c.every((f) => k.includes(f))));
  assert.deepEqual(unexpected, [], `new import cycles: ${unexpected.map((c) => c.join(' ↔ ')).join('; ')}`);
});

test('no runtime import cycle between folders', () => {
  const next = new Map<string, Set<string>>();
  for (const e of INTERNAL) {
    if (e.typeOnly) continue;
    const a = folderOf(e.from);
    const b = folderOf(e.to!);
    if (a === b) continue;
    (next.get(a) ?? next.set(a, new Set()).get(a)!).add(b);
  }
  const folders = [...new Set(FILES.map((f) => f.folder))];
  const found = cycles(folders, (n) => [...(next.get(n) ?? [])]);
  assert.deepEqual(found, [], `runtime cycles between folders: ${found.map((c) => c.join(' ↔ ')).join('; ')}`);
});

test('imports between folders follow the rules table', () => {
  const bad: string[] = [];
  for (const e of INTERNAL) {
    const from = folderOf(e.from);
    const to = folderOf(e.to!);
    if (from === to) continue;
    const rule = FOLDER_RULES[from]!;
    if (rule.value.includes(to)) continue;
    if (rule.typeOnly.includes(to)) {
      if (!e.typeOnly) bad.push(`${describe(e)}: ${from} may only \`import type\` from ${to}`);
      continue;
    }
    bad.push(`${describe(e)}: ${from} may not import from ${to}`);
  }
  for (const r of ONLY_FILE) {
    for (const e of INTERNAL) {
      if (folderOf(e.from) === r.from && folderOf(e.to!) === r.folder && e.to !== r.file) {
        bad.push(`${describe(e)}: ${r.from} may use only ${r.file} from ${r.folder}`);
      }
    }
  }
  for (const [target, importers] of Object.entries(RUNTIME_IMPORTERS)) {
    for (const e of INTERNAL) {
      if (e.to !== target || e.typeOnly || folderOf(e.from) === folderOf(target)) continue;
      if (!importers.some((p) => matches(p, e.from))) bad.push(`${describe(e)}: only ${importers.join(', ')} may import ${target} at runtime`);
    }
  }
  assert.deepEqual(bad, []);
});

test('core imports nothing from src/ and no package', () => {
  const bad = EDGES.filter((e) => folderOf(e.from) === 'core' && (e.to !== null || !e.spec.startsWith('node:')));
  assert.deepEqual(bad.map(describe), []);
});

test('third-party packages and network builtins stay with their owners', () => {
  const bad: string[] = [];
  for (const e of EDGES) {
    if (e.to !== null) continue;
    const pkg = packageOf(e.spec);
    const owners = PACKAGE_OWNERS[pkg];
    if (owners === undefined) {
      if (!pkg.startsWith('node:')) bad.push(`${describe(e)}: package "${pkg}" has no owner in PACKAGE_OWNERS; add it on purpose`);
      continue;
    }
    if (!owners.some((p) => matches(p, e.from))) {
      bad.push(`${describe(e)}: "${pkg}" belongs to ${owners.join(', ')}`);
      continue;
    }
    const typeOnly = PACKAGE_TYPE_ONLY[pkg] ?? [];
    const allowed = PACKAGE_VALUE_EXCEPTIONS[pkg] ?? [];
    if (!e.typeOnly && typeOnly.some((p) => matches(p, e.from)) && !allowed.some((p) => matches(p, e.from))) bad.push(`${describe(e)}: ${e.from} may only \`import type\` from "${pkg}"`);
  }
  assert.deepEqual(bad, []);
});

test('pure decision files: no I/O modules, no clock, no randomness, no global timers', () => {
  const bad: string[] = [];
  for (const path of PURE_FILES) {
    const f = BY_PATH.get(path);
    if (f === undefined) {
      bad.push(`${path} is listed as pure but does not exist; update PURE_FILES`);
      continue;
    }
    for (const e of f.edges) {
      if (e.to === null && IMPURE_MODULES.includes(e.spec)) bad.push(`${describe(e)}: a pure file may not import ${e.spec}`);
      if (e.to !== null && !e.typeOnly && !PURE_FILES.includes(e.to)) bad.push(`${describe(e)}: a pure file may only value-import pure files`);
    }
    for (const [re, what] of IMPURE_CALLS) if (re.test(f.code)) bad.push(`${path} calls ${what}; take it as a parameter`);
  }
  // Files that call themselves [pure] in their header must be on the list.
  for (const f of FILES) {
    const header = readFileSync(join(SRC, f.path), 'utf8').split('\n').slice(0, 12).join('\n');
    if (/\[pure\]/.test(header) && !PURE_FILES.includes(f.path)) bad.push(`${f.path} says [pure] but is not in PURE_FILES`);
  }
  assert.deepEqual(bad, []);
});

test('named exports only, no barrels', () => {
  const bad: string[] = [];
  for (const f of FILES) {
    if (/^[ \t]*export[ \t]+default\b/m.test(f.code)) bad.push(`${f.path}: export default`);
    if (/(^|\/)index\.ts$/.test(f.path)) bad.push(`${f.path}: index.ts barrel`);
  }
  assert.deepEqual(bad, []);
});

// ---------------------------------------------------------------------------
// ERRORS ⇔ docs/errors.md

interface DocRow {
  readonly code: string;
  readonly status: string;
  readonly flag: string;
  readonly source: string;
  readonly retryable: string;
  readonly line: number;
}

/** Rows of the first table under the "## Codes" heading of docs/errors.md. */
function errorDocRows(): DocRow[] {
  const lines = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8').split('\n');
  const start = lines.findIndex((l) => /^##\s+Codes\s*$/.test(l));
  assert.notEqual(start, -1, 'docs/errors.md has no "## Codes" section');
  const rows: DocRow[] = [];
  let inTable = false;
  for (let i = start + 1; i < lines.length; i++) {
    const l = lines[i]!.trim();
    if (l.startsWith('#')) break;
    if (!l.startsWith('|')) {
      if (inTable) break;
      continue;
    }
    inTable = true;
    const cells = l.slice(1, l.endsWith('|') ? -1 : undefined).split('|').map((c) => c.trim().replace(/`/g, ''));
    if (cells.every((c) => /^:?-+:?$/.test(c))) continue; // separator
    if (cells[0]!.toLowerCase() === 'code') continue; // header
    rows.push({ code: cells[0]!, status: cells[1] ?? '', flag: cells[2] ?? '', source: cells[3] ?? '', retryable: cells[4] ?? '', line: i + 1 });
  }
  return rows;
}

test('docs/errors.md lists every ERRORS code with its status, flag, source and retryable', () => {
  const rows = errorDocRows();
  assert.ok(rows.length > 0, 'the Codes table in docs/errors.md is empty');
  const codes = Object.keys(ERRORS) as ErrorCode[];
  const bad: string[] = [];
  for (const code of codes) {
    const mine = rows.filter((r) => r.code === code);
    if (mine.length !== 1) {
      bad.push(`${code}: ${mine.length} rows in docs/errors.md (want 1)`);
      continue;
    }
    const r = mine[0]!;
    const spec = ERRORS[code];
    if (r.status !== String(spec.status)) bad.push(`${code}: doc status ${r.status}, code ${spec.status} (line ${r.line})`);
    if (r.flag !== spec.flag) bad.push(`${code}: doc flag ${r.flag}, code ${spec.flag} (line ${r.line})`);
    if (r.source !== spec.source) bad.push(`${code}: doc source ${r.source}, code ${spec.source} (line ${r.line})`);
    if (r.retryable !== (spec.retryable ? 'yes' : 'no')) bad.push(`${code}: doc retryable ${r.retryable}, code ${spec.retryable} (line ${r.line})`);
  }
  for (const r of rows) if (!(r.code in ERRORS)) bad.push(`docs/errors.md line ${r.line}: "${r.code}" is not a code in src/core/errors.ts ERRORS`);
  assert.deepEqual(bad, []);
});

test('ERRORS flags are unique', () => {
  const flags = Object.values(ERRORS).map((s) => s.flag);
  assert.equal(new Set(flags).size, flags.length, `duplicate flags: ${flags.join(', ')}`);
});

test('the data plane takes flags from ERRORS, never from string literals', () => {
  // One home for flags: a literal like 'UF' in proxy/ would drift from the table.
  const flags = new Set<string>(Object.values(ERRORS).map((e) => e.flag));
  for (const [path, file] of BY_PATH) {
    if (!path.startsWith('proxy/')) continue;
    for (const m of file.code.matchAll(/'([A-Z]{2,3})'/g)) {
      assert.ok(!flags.has(m[1]!), `${path} spells flag '${m[1]}' as a literal; use ERRORS.<CODE>.flag`);
    }
  }
});

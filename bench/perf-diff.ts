// Compares two `perf record` profiles of proxies under the same load, per request: for each
// symbol and each group of symbols (kernel, V8's C++ and builtins, WebAssembly, JavaScript by file,
// ...), microseconds per request = samples ÷ frequency ÷ requests in the recorded window. Used by
// bench/perf-compare.sh (the gateway against bench/floor.ts); the method is in docs/benchmarks.md,
// "Sixth session".
//
//   node bench/perf-diff.ts A.perf.data A_REQUESTS B.perf.data B_REQUESTS [FREQ_HZ] [TOP]
import { execFileSync } from 'node:child_process';

type Profile = { groups: Map<string, number>; symbols: Map<string, number> };

function group(dso: string, sym: string): string {
  if (dso.includes('kernel')) return 'kernel';
  if (dso.startsWith('[JIT]')) {
    if (sym.includes('wasm')) return 'WebAssembly (llhttp)';
    const own = /\/(src\/[\w/.-]+|bench\/[\w.-]+)/.exec(sym);
    if (own !== null) return `js ${own[1]}`;
    const node = /node:([\w/_]+)/.exec(sym);
    if (node !== null) return `js node:${node[1]}`;
    return sym.startsWith('RegExp') ? 'regexps' : 'js other';
  }
  if (dso === 'node') {
    if (sym.startsWith('Builtins_')) return 'V8 builtins';
    if (sym.startsWith('v8::')) return 'V8 C++ (GC, strings, runtime)';
    if (sym.startsWith('node::')) return 'Node C++';
    return 'node binary, other (libuv, ...)';
  }
  return dso;
}

function load(file: string, requests: number, hz: number): Profile {
  const out = execFileSync('perf', ['report', '-i', file, '--no-children', '--sort', 'dso,sym', '-g', 'none', '-q', '-F', 'sample,dso,sym'], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const groups = new Map<string, number>();
  const symbols = new Map<string, number>();
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+(\[JIT\] tid \d+|\S+)\s+\[.\]\s+(.*)$/.exec(line);
    if (m === null) continue;
    const us = (Number(m[1]) / hz / requests) * 1e6;
    const dso = m[2]!.startsWith('[JIT]') ? '[JIT]' : m[2]!;
    const sym = m[3]!.trim();
    const g = group(dso, sym);
    groups.set(g, (groups.get(g) ?? 0) + us);
    const key = `${dso} ${sym}`;
    symbols.set(key, (symbols.get(key) ?? 0) + us);
  }
  return { groups, symbols };
}

const [fa, ra, fb, rb, hzArg, topArg] = process.argv.slice(2);
if (fa === undefined || ra === undefined || fb === undefined || rb === undefined) {
  console.error('usage: node bench/perf-diff.ts A.perf.data A_REQUESTS B.perf.data B_REQUESTS [FREQ_HZ] [TOP]');
  process.exit(2);
}
const hz = Number(hzArg ?? 2000);
const top = Number(topArg ?? 30);
const a = load(fa, Number(ra), hz);
const b = load(fb, Number(rb), hz);

function table(title: string, x: Map<string, number>, y: Map<string, number>, limit: number): void {
  const keys = [...new Set([...x.keys(), ...y.keys()])].map((k) => [k, (x.get(k) ?? 0) - (y.get(k) ?? 0)] as const);
  keys.sort((p, q) => q[1] - p[1]);
  console.log(`\n| ${title} | A µs/req | B µs/req | A − B |\n|---|---|---|---|`);
  let sa = 0;
  let sb = 0;
  for (const [k] of keys) {
    sa += x.get(k) ?? 0;
    sb += y.get(k) ?? 0;
  }
  for (const [k, d] of keys.slice(0, limit)) {
    if (Math.abs(d) < 0.005 && limit > 20) continue;
    console.log(`| ${k.slice(0, 110).replaceAll('|', '\\|')} | ${(x.get(k) ?? 0).toFixed(3)} | ${(y.get(k) ?? 0).toFixed(3)} | ${d >= 0 ? '+' : ''}${d.toFixed(3)} |`);
  }
  console.log(`| **total** | ${sa.toFixed(2)} | ${sb.toFixed(2)} | ${sa - sb >= 0 ? '+' : ''}${(sa - sb).toFixed(2)} |`);
}

table('group', a.groups, b.groups, 1000);
table('symbol (largest differences)', a.symbols, b.symbols, top);

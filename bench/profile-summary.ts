// Summarises V8 .cpuprofile files (node --cpu-prof): self time by function and by bucket
// (gateway code, node:http, undici, prom-client, streams, GC, idle …), as shares of busy samples.
//
//   node bench/profile-summary.ts [--top 30] [--skip-s S] FILE.cpuprofile [FILE2 …]
//
// --skip-s S leaves out each profile's first S seconds (startup and warm-up).
// Several files are summed (e.g. one per fresh process). "busy" excludes (idle) and (program)
// is kept (it is native work V8 could not attribute: mostly libuv, syscalls and C++ glue).
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function bucket(cf: CallFrame): string {
  const u = cf.url;
  const f = cf.functionName;
  if (f === '(idle)') return 'idle';
  if (f === '(garbage collector)') return 'GC';
  if (f === '(program)') return 'native (program)';
  if (u.includes('/src/proxy/access-log')) return 'gateway: access log';
  if (u.includes('/src/metrics/')) return 'gateway: metrics';
  if (u.includes('/src/upstream/')) return 'gateway: upstream';
  if (u.includes('/src/')) return 'gateway: pipeline, routing, admission';
  if (u.includes('prom-client')) return 'prom-client';
  if (u.includes('undici')) return 'undici';
  if (u.includes('pino') || u.includes('sonic-boom')) return 'pino';
  if (u.startsWith('node:_http') || u.startsWith('node:http') || u.includes('internal/http')) return 'node:http';
  if (u.startsWith('node:net') || u.includes('stream_base_commons') || u.includes('internal/net')) return 'node:net';
  if (u.includes('internal/streams') || u.startsWith('node:stream') || u.startsWith('node:events') || u.startsWith('node:internal/events')) return 'streams/events';
  if (u.includes('internal/timers') || u.startsWith('node:timers')) return 'timers';
  if (u.includes('internal/crypto')) return 'crypto';
  if (u.includes('internal/modules') || u.includes('internal/vm')) return 'startup (module loading)';
  if (u.includes('internal/process/task_queues') || u.includes('async_hooks')) return 'task queues';
  if (u === '') {
    if (f === 'writev' || f === 'writeBuffer' || f === 'writeString' || f === 'writeLatin1String' || f === 'writeUtf8String' || f === 'read') return 'syscalls (write/read, incl. kernel TCP)';
    if (f.startsWith('wasm') || f.startsWith('js-to-wasm')) return 'undici';
    if (f.startsWith('RegExp:')) return 'regexps (header validation)';
    if (/^(compile|Module|ModuleWrap|link|evaluate|internalModuleStat|readFileUtf8|getPackageScopeConfig|getNearestParentPackageJSON|readPackageJSON|lstat|open|fstat|pathToFileURL|getModuleRequests|setExport|Instance|instantiate)/.test(f)) return 'startup (module loading)';
    return 'native (C++ glue, libuv)';
  }
  if (u.startsWith('wasm://')) return 'undici';
  if (u.startsWith('file:')) return 'other packages';
  return 'other node';
}

const args = process.argv.slice(2);
let top = 30;
let skipUs = 0;
const files: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--top') top = Number(args[++i]);
  else if (args[i] === '--skip-s') skipUs = Number(args[++i]) * 1e6;
  else files.push(args[i]!);
}
if (files.length === 0) {
  console.error('usage: node bench/profile-summary.ts [--top N] FILE.cpuprofile …');
  process.exit(2);
}

const byFn = new Map<string, number>();
const byBucket = new Map<string, number>();
let total = 0;
let idle = 0;
for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const nodes = new Map<number, ProfileNode>();
  for (const n of p.nodes) nodes.set(n.id, n);
  let t = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = nodes.get(p.samples[i]!)!;
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < skipUs) continue;
    const cf = n.callFrame;
    const b = bucket(cf);
    if (b === 'idle') {
      idle += dt;
      continue;
    }
    total += dt;
    byBucket.set(b, (byBucket.get(b) ?? 0) + dt);
    const where = cf.url === '' ? '' : ` ${cf.url.replace(/^.*\/(node_modules|src|bench)\//, '$1/')}:${cf.lineNumber + 1}`;
    const key = `${cf.functionName || '(anonymous)'}${where}`;
    byFn.set(key, (byFn.get(key) ?? 0) + dt);
  }
}

const pct = (v: number): string => `${((100 * v) / total).toFixed(1)} %`;
console.log(`${files.length} profile(s), busy ${(total / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s\n`);
console.log('| bucket | self share of busy |\n|---|---|');
for (const [k, v] of [...byBucket].sort((a, b) => b[1] - a[1])) console.log(`| ${k} | ${pct(v)} |`);
console.log(`\n| function (self) | share |\n|---|---|`);
for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`| \`${k}\` | ${pct(v)} |`);

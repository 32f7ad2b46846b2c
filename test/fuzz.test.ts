// Bounded fuzz of the data plane's edge (issue 7): malformed and odd HTTP/1.1
// requests over raw TCP through a real gateway to a raw capturing upstream
// (test/helpers/raw-upstream.ts) that plays a Serve proxy with three apps:
// /llm → llm, /llm/v2 → llm2, / → default.
//
// Each group is a list of hand-written cases (the known-bad shapes, each a
// minimal reproducer) followed by cases generated from a seeded PRNG. The seed
// is fixed so a run is reproducible; it is printed, and FUZZ_SEED=<n> replays
// another one. FUZZ_CASES=<n> sets the generated cases per group (default 150);
// FUZZ_GROUP_BUDGET_MS (default 8000) stops a group's generated cases once
// that much time went by on a slow machine, so the file stays well under a
// minute. With the defaults that is about 880 cases (about 210 hand-written,
// 150 generated per group; a group that keeps failing runs fewer, as its cases
// then wait for leaks); the number that ran is printed per group and in total.
// Against a fixed gateway the whole file takes about 10 s on a busy 2-core box.
//
// Invariants checked after every case (all sockets closed, the gateway settled):
//  1. the gateway still answers a normal request (it survived);
//  2. the upstream got at most as many requests as the case held complete
//     requests, and no request id reached it twice (each downstream request
//     maps to at most one upstream request);
//  3. every upstream request carries exactly one x-request-id and one
//     x-forwarded-for whose last hop is the client's real address (the client
//     connects from 127.0.0.2 where the OS allows, and spoofs 127.0.0.1), at
//     most one Host, and parses as a valid request;
//  4. the gateway handled it as a request (an access-log entry with its id)
//     and admitted it for the app Serve routes its target to (routingPath +
//     Serve's longest-prefix rule on the target the upstream received);
//  5. no cluster error is counted for a client fault: the rollout gate's error
//     count (/api/v1/status), the failed upstream attempts and the 5xx
//     answers (/metrics) do not move (this upstream never fails);
//  6. the client never gets a 5xx (the upstream never sends one, so any 5xx
//     is the gateway's), and a flagged local reply is a 4xx; cases that need
//     an answer (CONNECT, OPTIONS *, Expect, duplicate Host) get one; the
//     gateway never leaves a client hanging without answer or close;
//  7. no admission permit, upstream request or upgrade is left behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig, LogRecorder, waitFor } from './helpers/stack.ts';
import { startGateway, type Gateway } from '../src/main.ts';
import { buildRouteTable, matchRoute, routingPath, type RouteTable } from '../src/routing/route-table.ts';
import type { AccessLog } from '../src/proxy/access-log.ts';
import { RawUpstream, startRawUpstream, type UpstreamRecord } from './helpers/raw-upstream.ts';
import { loopbackAliasWorks, rawExchange, responseHeader, showBytes, type ClientStep, type ExchangeResult } from './helpers/raw-client.ts';
import { seededRandom } from './helpers/seeded-random.ts';

const SEED = parseSeed(process.env['FUZZ_SEED']) ?? 0x5eed7;
const CASES_PER_GROUP = Number(process.env['FUZZ_CASES'] ?? 150);
const GROUP_BUDGET_MS = Number(process.env['FUZZ_GROUP_BUDGET_MS'] ?? 8_000);
const EXCHANGE_DEADLINE_MS = 10_000;
/** How long the gateway may take to be idle again once the client closed. */
const SETTLE_MS = 3_000;
const SETTLE_AFTER_LEAKS_MS = 500;
/** How long the upstream takes to answer a target containing /slow-app. */
const SLOW_APP_MS = 300;
const VERBOSE = process.env['FUZZ_VERBOSE'] === '1';
/** Cases reported in full in a failure message (the rest by name). */
const REPORT_MAX = Number(process.env['FUZZ_REPORT_MAX'] ?? 12);
/** A group that runs past this failed anyway (something waited without a deadline). */
const GROUP_TIMEOUT_MS = 120_000;

const SERVE_YAML = `applications:
  - {name: llm, route_prefix: /llm, import_path: a:b, deployments: [{name: L, max_ongoing_requests: 100}]}
  - {name: llm2, route_prefix: /llm/v2, import_path: a:b, deployments: [{name: L2, max_ongoing_requests: 100}]}
  - {name: default, route_prefix: /, import_path: a:b, deployments: [{name: D, max_ongoing_requests: 100}]}
`;
const SERVE_ROUTES: RouteTable<string> = buildRouteTable([
  ['/llm', 'llm'],
  ['/llm/v2', 'llm2'],
  ['/', 'default'],
]);

/** The app Serve routes a request target to: uvicorn's path (routingPath) + the longest-prefix rule. */
function serveApp(target: string): string {
  return matchRoute(SERVE_ROUTES, routingPath(target)) ?? '';
}

// ── fixture ───────────────────────────────────────────────────────────────

interface LogEntry {
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly app: string;
  readonly status: number;
  readonly flag: string;
}

interface Fixture {
  gw: Gateway;
  up: RawUpstream;
  port: number;
  stateDir: string;
  /** The address the gateway sees the fuzz client connect from. */
  clientAddr: string;
  /** A different address the client claims in x-forwarded-for. */
  spoofAddr: string;
  log: LogEntry[];
  seenIds: Map<string, number>;
  counters: Map<string, number>;
  /** Gateway state counts after the last leak (see busyState). */
  baseline: Map<string, number>;
  /** Leaks seen in the running group. */
  groupLeaks: number;
  /** Result of closeAll(), null before. */
  closed: boolean | null;
  totalCases: number;
  liveSeq: number;
}

let fx: Fixture;
const startedAt = performance.now();
/** Errors thrown out of the gateway's event handlers while a case ran (the gateway process would die). */
const crashes: string[] = [];
process.on('uncaughtException', (err) => crashes.push(err.stack ?? String(err)));

before(async () => {
  const up = await startRawUpstream();
  // A slow app for the cases that need a response in progress while more bytes arrive.
  up.onRequest = (r) => (r.target.includes('/slow-app') ? { kind: 'reply', delayMs: SLOW_APP_MS } : undefined);
  const stateDir = mkdtempSync(join(tmpdir(), 'sg-fuzz-'));
  const log: LogEntry[] = [];
  const accessLog: AccessLog = {
    log(requestId, method, path, app, _cluster, status, flag) {
      log.push({ requestId, method, path, app, status, flag });
    },
  };
  const gw = await startGateway({
    config: buildConfig({
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      state_dir: stateDir,
      clusters: [{ name: 'blue', endpoints: [up.url], serve_config: SERVE_YAML }],
      // One probe at start; a generous timeout, the machine may be very busy.
      health: { probe_interval: '60s', probe_timeout: '30s' },
      shutdown: { drain_delay: '0s', grace_period: '1s' },
    }),
    logger: new LogRecorder(),
    accessLog,
    watch: false,
    adminToken: null,
  });
  try {
    await waitFor(() => gw.reconciler.clusters.get('blue')!.endpoints.every((e) => e.health.probeOk === true), 30_000, 'first probe');
  } catch (err) {
    await gw.close();
    await up.close();
    throw err;
  }
  const alias = await loopbackAliasWorks('127.0.0.2');
  fx = {
    gw,
    up,
    port: Number(new URL(gw.url).port),
    stateDir,
    clientAddr: alias ? '127.0.0.2' : '127.0.0.1',
    spoofAddr: alias ? '127.0.0.1' : '203.0.113.7',
    log,
    seenIds: new Map(),
    counters: await clusterCounters(gw),
    baseline: new Map(),
    groupLeaks: 0,
    closed: null,
    totalCases: 0,
    liveSeq: 0,
  };
});

/** Closes the upstream, then the gateway; false when the gateway's close() did not finish in 10 s. */
async function closeAll(): Promise<boolean> {
  if (fx.closed !== null) return fx.closed;
  // The upstream goes first: a request the gateway leaked (reported by its case)
  // would otherwise keep an undici client, and so gw.close(), waiting forever.
  await fx.up.close();
  fx.closed = await Promise.race([fx.gw.close().then(() => true), new Promise<boolean>((r) => setTimeout(r, 10_000, false).unref())]);
  rmSync(fx.stateDir, { recursive: true, force: true });
  return fx.closed;
}

after(async () => {
  // eslint-disable-next-line no-console
  console.log(`fuzz: seed ${SEED} (FUZZ_SEED to replay), ${fx?.totalCases ?? 0} cases in ${((performance.now() - startedAt) / 1000).toFixed(1)} s`);
  if (!fx) return;
  if (!(await closeAll())) {
    // Reported by the last test; what the gateway left open would keep this
    // process (and the whole `npm test`) alive, so end it once the results are out.
    setTimeout(() => process.exit(), 2_000).unref();
  }
});

// ── cases ─────────────────────────────────────────────────────────────────

interface Case {
  readonly name: string;
  readonly steps: readonly ClientStep[];
  /** Most upstream requests the case may cause: its complete requests, read as liberally as a correct parser may. */
  readonly complete: number;
  /** Final responses to wait for before closing (0: wait for the server to close). */
  readonly expect: number;
  /** Indices of responses that answer HEAD requests. */
  readonly heads?: readonly number[];
  /** Statuses the first response must have (the gateway must answer, not just close). */
  readonly mustAnswer?: (status: number) => boolean;
  /** How the upstream answers an Upgrade request (default 426). */
  readonly upgradeStatus?: number;
}

const is4xx = (s: number) => s >= 400 && s < 500;
const notError = (s: number) => s < 500;

interface Req {
  method?: string;
  target?: string;
  version?: string;
  /** null: no Host header. */
  host?: string | null;
  headers?: ReadonlyArray<readonly [string, string]>;
  /** Sent with a Content-Length (unless headers carry one). */
  body?: string;
  /** Sent chunked (Transfer-Encoding: chunked unless headers carry one). */
  chunks?: readonly string[];
  ext?: string;
  trailers?: ReadonlyArray<readonly [string, string]>;
}

/** One request as latin1 text (every byte value 0-255 is one char). */
function req(r: Req): string {
  const lines = [`${r.method ?? 'GET'} ${r.target ?? '/'} ${r.version ?? 'HTTP/1.1'}`];
  if (r.host !== null) lines.push(`Host: ${r.host ?? 'fuzz.test'}`);
  const has = (n: string) => (r.headers ?? []).some(([k]) => k.toLowerCase() === n);
  for (const [k, v] of r.headers ?? []) lines.push(`${k}: ${v}`);
  let body = '';
  if (r.chunks !== undefined) {
    if (!has('transfer-encoding')) lines.push('Transfer-Encoding: chunked');
    body = chunked(r.chunks, r.trailers ?? [], r.ext ?? '');
  } else if (r.body !== undefined) {
    if (!has('content-length')) lines.push(`Content-Length: ${r.body.length}`);
    body = r.body;
  }
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

function chunked(chunks: readonly string[], trailers: ReadonlyArray<readonly [string, string]>, ext = ''): string {
  let s = '';
  for (const c of chunks) s += `${c.length.toString(16)}${ext}\r\n${c}\r\n`;
  return `${s}0\r\n${trailers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** Raw UTF-8 bytes of `s` as a latin1 string. */
const utf8 = (s: string) => Buffer.from(s, 'utf8').toString('latin1');

/** A case that writes `bytes` at once and waits for `expect` responses. */
function send(name: string, bytes: string, o: Partial<Case> = {}): Case {
  return { name, steps: [{ send: bytes }], complete: 1, expect: 1, ...o };
}

/** A case that writes `bytes`, half-closes, and waits for the server to close. */
function truncated(name: string, bytes: string, o: Partial<Case> = {}): Case {
  return { name, steps: [{ send: bytes }, { halfClose: true }], complete: 0, expect: 0, ...o };
}

let idSeq = 0;
/** Forwarding headers a client may try to forge (unique ids, so duplicates at the upstream mean double delivery). */
function spoof(rng: Rng, p = 0.5): Array<[string, string]> {
  const h: Array<[string, string]> = [];
  if (rng() < p) h.push(['X-Forwarded-For', fx.spoofAddr]);
  if (rng() < p) h.push(['X-Request-Id', `spoof-${SEED}-${++idSeq}`]);
  if (rng() < p / 3) h.push(['X-Forwarded-Host', 'evil.example']);
  if (rng() < p / 3) h.push(['X-Forwarded-Proto', 'https']);
  return h;
}

function forged(): Array<[string, string]> {
  return [
    ['X-Forwarded-For', fx.spoofAddr],
    ['X-Request-Id', `forged-${SEED}-${++idSeq}`],
  ];
}

const TARGETS = [
  '/',
  '/llm',
  '/llm/',
  '/llm/v1/chat',
  '/llm/v2',
  '/llm/v2/x',
  '/llm/v2x',
  '/llmx',
  '/other/path',
  '/llm?x=1&y=%2F',
  '/llm/v2?q=/llm',
  '/llm%2Fv2',
  '/llm%2fv2/x',
  '/%6c%6c%6d/x',
  '/%6C%6C%6D',
  '/llm/v%32',
  '/llm%zz',
  '/llm/%',
  '/llm%2',
  '/%25llm',
  '/llm#frag',
  '/llm/v2#x?y',
  '/#/llm',
  '/llm;p=1',
  '//llm',
  '/./llm',
  '/llm/../x',
  '/llm%3Fx=1',
  '/llm%23x',
  '/LLM',
  '/llm/%E2%82%AC',
  '/llm/%C3',
  '/llm%00',
  '/llm/%FF%FE',
  `/llm/${utf8('é')}`,
  '/llm/+plus',
  'http://fuzz.test/llm/abs',
  'http://evil.example:81/llm/v2/x?q=1',
  'https://fuzz.test/',
  'HTTP://FUZZ.TEST/llm',
  'http://fuzz.test',
  'http://fuzz.test?x=/llm',
];

const PATH_PIECES = ['/llm', '/v2', '/LLM', '/%6c%6c%6d', '%2F', '%2f', '/%', '%zz', '%2', '/%25', '%C3%A9', utf8('é'), '?', '#', '/..', '/.', '//', ';x', '%00', '%3F', '%23', '+', '/v%32', 'x', '/x', '%20', '%u0041', '%%', '%2e%2e'];

// ── groups ────────────────────────────────────────────────────────────────

function requestLineCases(rng: Rng, n: number): Case[] {
  const fixed: Case[] = [
    ...['GET', 'DELETE', 'OPTIONS'].map((m) => send(`${m} /llm`, req({ method: m, target: '/llm/x' }))),
    send('HEAD /llm', req({ method: 'HEAD', target: '/llm' }), { heads: [0] }),
    ...['POST', 'PUT', 'PATCH'].map((m) => send(`${m} with body`, req({ method: m, target: '/llm/v2/x', body: '{"a":1}' }))),
    send('TRACE', req({ method: 'TRACE', target: '/llm' })),
    send('OPTIONS * (asterisk-form)', req({ method: 'OPTIONS', target: '*' }), { mustAnswer: notError }),
    send('OPTIONS * with forged forwarding headers', req({ method: 'OPTIONS', target: '*', headers: forged() }), { mustAnswer: notError }),
    send('CONNECT authority-form', req({ method: 'CONNECT', target: 'fuzz.test:443', host: 'fuzz.test:443' }), { complete: 0, mustAnswer: is4xx }),
    send('CONNECT to a route', req({ method: 'CONNECT', target: '/llm' }), { complete: 0, mustAnswer: is4xx }),
    send('absolute-form', req({ target: 'http://fuzz.test/llm/abs' })),
    send('absolute-form, other host and port', req({ target: 'http://evil.example:81/llm/v2/x?q=1' })),
    send('absolute-form https', req({ target: 'https://fuzz.test/llm' })),
    send('absolute-form upper-case scheme', req({ target: 'HTTP://FUZZ.TEST/llm' })),
    send('absolute-form without a path', req({ target: 'http://fuzz.test' })),
    send('authority-form on GET', req({ target: 'fuzz.test:80' })),
    send('asterisk-form on GET', req({ target: '*' })),
    send('lower-case method', req({ method: 'get', target: '/llm' })),
    send('unknown method', req({ method: 'FOO', target: '/llm' })),
    send('PROPFIND', req({ method: 'PROPFIND', target: '/llm' })),
    send('QUERY with body', req({ method: 'QUERY', target: '/llm', body: 'q' })),
    send('HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
    send('HTTP/1.0 without Host', req({ version: 'HTTP/1.0', host: null, target: '/llm' })),
    send('HTTP/1.0 keep-alive, two requests', req({ version: 'HTTP/1.0', target: '/llm', headers: [['Connection', 'keep-alive']] }) + req({ version: 'HTTP/1.0', target: '/' }), { complete: 2, expect: 2 }),
    truncated('HTTP/0.9 simple request', 'GET /llm\r\n', { complete: 1 }),
    send('HTTP/2.0 version', req({ version: 'HTTP/2.0', target: '/llm' })),
    send('HTTP/1.2 version', req({ version: 'HTTP/1.2', target: '/llm' })),
    send('HTTP/9.9 version', req({ version: 'HTTP/9.9', target: '/llm' })),
    send('lower-case version', req({ version: 'http/1.1', target: '/llm' })),
    send('two spaces in the request line', 'GET  /llm HTTP/1.1\r\nHost: fuzz.test\r\n\r\n'),
    send('tab in the request line', 'GET\t/llm HTTP/1.1\r\nHost: fuzz.test\r\n\r\n'),
    send('trailing space after the version', 'GET /llm HTTP/1.1 \r\nHost: fuzz.test\r\n\r\n'),
    send('empty line before the request line', `\r\n${req({ target: '/llm' })}`),
    send('two empty lines before the request line', `\r\n\r\n${req({ target: '/llm' })}`),
    send('target without a leading slash', req({ target: 'llm' })),
    send('target of 8 KiB', req({ target: `/llm/${'a'.repeat(8192)}` })),
    send('target of 20 KiB', req({ target: `/llm/${'a'.repeat(20_480)}` })),
    send('control byte in the target', req({ target: '/llm/\x01' })),
    send('raw space in the target', 'GET /llm /x HTTP/1.1\r\nHost: fuzz.test\r\n\r\n'),
    send('raw UTF-8 in the target', req({ target: `/llm/${utf8('日本')}` })),
    send('raw DEL and high bytes in the target', req({ target: '/llm/\x7f\xff' })),
    send('quote and braces in the target', req({ target: '/llm/"<{x}>' })),
    send('fragment in the target', req({ target: '/llm/v2#/x' })),
  ];
  const methods = ['GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'get', 'FOO', 'PROPFIND', 'M-SEARCH'];
  const versions = ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'HTTP/1.10'];
  const gen: Case[] = [];
  for (let i = 0; i < n; i++) {
    const method = pick(rng, methods);
    const target = pick(rng, TARGETS);
    const version = pick(rng, versions);
    const body = method === 'POST' || method === 'PUT' || method === 'PATCH' || rng() < 0.1 ? 'x'.repeat(int(rng, 0, 40)) : undefined;
    const r = req({ method, target, version, headers: spoof(rng), ...(body !== undefined ? { body } : {}), ...(version === 'HTTP/1.0' && rng() < 0.5 ? { host: null } : {}) });
    gen.push(send(`random ${method} ${showBytes(target, 60)} ${version}`, r, { heads: method === 'HEAD' ? [0] : [] }));
  }
  return [...fixed, ...gen];
}

function headerCases(rng: Rng, n: number): Case[] {
  const base = (headers: Array<[string, string]>, o: Req = {}) => req({ method: 'POST', target: '/llm/h', body: 'hi', headers, ...o });
  const fixed: Case[] = [
    send('no Host on HTTP/1.1', req({ target: '/llm', host: null })),
    send('two identical Host headers', req({ target: '/llm', headers: [['Host', 'fuzz.test']] }), { mustAnswer: notError }),
    send('two different Host headers', req({ target: '/llm', headers: [['Host', 'evil.example']] }), { mustAnswer: notError }),
    send('Host and host', req({ target: '/llm', headers: [['host', 'other.example']] }), { mustAnswer: notError }),
    send('two Host headers with forged forwarding headers', req({ target: '/llm/v2', headers: [['Host', 'evil.example'], ...forged()] }), { mustAnswer: notError }),
    send('empty Host', req({ target: '/llm', host: '' })),
    send('Host with userinfo', req({ target: '/llm', host: 'user:pw@fuzz.test' })),
    send('Host with a path', req({ target: '/llm', host: 'fuzz.test/llm' })),
    send('Host with spaces', req({ target: '/llm', host: 'fuzz .test' })),
    send('Expect: 100-continue, body sent at once', base([['Expect', '100-continue']]), { mustAnswer: notError }),
    {
      name: 'Expect: 100-continue, body after the 100',
      steps: [{ send: 'POST /llm/e HTTP/1.1\r\nHost: fuzz.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n' }, { awaitInterim: 1 }, { send: 'hello' }],
      complete: 1,
      expect: 1,
      mustAnswer: notError,
    },
    send('Expect: 100-continue on a GET', req({ target: '/llm', headers: [['Expect', '100-continue']] }), { mustAnswer: notError }),
    send('Expect: 100-continue pipelined behind a slow response', req({ target: '/llm/slow-app' }) + base([['Expect', '100-continue']]), { complete: 2, expect: 2 }),
    send('Expect: 100-continue with forged forwarding headers', base([['Expect', '100-continue'], ...forged()]), { mustAnswer: notError }),
    send('Expect: 100-Continue (case)', base([['Expect', '100-Continue']]), { mustAnswer: notError }),
    send('Expect: something else', base([['Expect', 'x-fancy']]), { mustAnswer: notError }),
    send('obs-fold continuation line', 'GET /llm HTTP/1.1\r\nHost: fuzz.test\r\nX-Folded: a\r\n b\r\n\r\n'),
    send('obs-fold on Host', 'GET /llm HTTP/1.1\r\nHost:\r\n fuzz.test\r\n\r\n'),
    send('obs-fold on Transfer-Encoding', 'POST /llm HTTP/1.1\r\nHost: fuzz.test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n'),
    send('header line without a colon', 'GET /llm HTTP/1.1\r\nHost: fuzz.test\r\nNoColonHere\r\n\r\n'),
    send('space before the colon', 'GET /llm HTTP/1.1\r\nHost : fuzz.test\r\n\r\n'),
    send('empty header name', 'GET /llm HTTP/1.1\r\nHost: fuzz.test\r\n: empty\r\n\r\n'),
    send('non-token byte in a header name', 'GET /llm HTTP/1.1\r\nHost: fuzz.test\r\nX(y): z\r\n\r\n'),
    send('NUL in a header value', 'GET /llm HTTP/1.1\r\nHost: fuzz.test\r\nX-A: a\x00b\r\n\r\n'),
    send('bare CR in a header value', 'GET /llm HTTP/1.1\r\nHost: fuzz.test\r\nX-A: a\rb\r\n\r\n'),
    send('bare LF line ends', 'GET /llm HTTP/1.1\nHost: fuzz.test\nX-A: b\n\n'),
    send('obs-text (latin1) in a header value', 'GET /llm HTTP/1.1\r\nHost: fuzz.test\r\nX-A: caf\xe9\r\n\r\n'),
    send('one header of 8 KiB', req({ target: '/llm', headers: [['X-Big', 'b'.repeat(8192)]] })),
    send('one header of 17 KiB', req({ target: '/llm', headers: [['X-Big', 'b'.repeat(17_408)]] })),
    send('one header of 70 KiB', req({ target: '/llm', headers: [['X-Big', 'b'.repeat(71_680)]] })),
    send('300 small headers', req({ target: '/llm', headers: Array.from({ length: 300 }, (_, i) => [`X-H${i}`, 'v'] as [string, string]) })),
    send('3000 small headers', req({ target: '/llm', headers: Array.from({ length: 3000 }, (_, i) => [`X-H${i}`, 'v'] as [string, string]) })),
    send('two X-Forwarded-For headers', req({ target: '/llm', headers: [['X-Forwarded-For', fx.spoofAddr], ['X-Forwarded-For', '10.9.9.9']] })),
    send('two X-Request-Id headers', req({ target: '/llm', headers: [['X-Request-Id', `dup-a-${++idSeq}`], ['X-Request-Id', `dup-b-${++idSeq}`]] })),
    send('Forwarded header', req({ target: '/llm', headers: [['Forwarded', `for=${fx.spoofAddr};proto=https`]] })),
    send('Connection naming the gateway headers', req({ target: '/llm', headers: [['Connection', 'x-request-id, x-forwarded-for, host'], ...forged()] })),
    send('Connection naming content-length', base([['Connection', 'content-length']])),
    send('Connection naming transfer-encoding', req({ method: 'POST', target: '/llm', chunks: ['ab', 'cd'], headers: [['Connection', 'transfer-encoding']] })),
    send('Proxy-Connection, Keep-Alive, TE, Trailer', req({ target: '/llm', headers: [['Proxy-Connection', 'keep-alive'], ['Keep-Alive', 'timeout=1'], ['TE', 'trailers'], ['Trailer', 'X-T']] })),
    send('Upgrade without Connection: upgrade', req({ target: '/llm', headers: [['Upgrade', 'websocket']] })),
    send('Content-Length +5', base([['Content-Length', '+2']])),
    send('Content-Length -1', req({ method: 'POST', target: '/llm', headers: [['Content-Length', '-1']] })),
    send('Content-Length in hex', base([['Content-Length', '0x2']])),
    send('Content-Length with leading zeros', base([['Content-Length', '0002']])),
    send('Content-Length 2, 2 (list)', base([['Content-Length', '2, 2']])),
    send('Content-Length 2, 3 (list)', base([['Content-Length', '2, 3']])),
    send('two equal Content-Length headers', base([['Content-Length', '2'], ['Content-Length', '2']])),
    send('two different Content-Length headers', base([['Content-Length', '2'], ['Content-Length', '3']])),
    send('Content-Length larger than 2^53', req({ method: 'POST', target: '/llm', headers: [['Content-Length', '99999999999999999999']] }), { complete: 0 }),
    send('Content-Length on a GET', req({ target: '/llm', body: 'abc' })),
    send('header names in odd case', 'GET /llm HTTP/1.1\r\nhOsT: fuzz.test\r\ncOnTeNt-LeNgTh: 0\r\n\r\n'),
  ];
  const mutations: Array<(r: Rng) => Array<[string, string]>> = [
    () => [['Host', 'evil.example']],
    () => [['Expect', '100-continue']],
    () => [['Connection', 'close']],
    () => [['Connection', 'keep-alive, x-hop'], ['X-Hop', 'h']],
    () => [['TE', 'trailers']],
    () => [['X-Big', 'z'.repeat(4096)]],
    () => [['X-Empty', '']],
    () => [['X-Latin1', 'caf\xe9']],
    () => [['Cookie', 'a=1'], ['Cookie', 'b=2']],
    () => [['Content-Type', 'application/json; charset=utf-8']],
    () => [['Via', '1.1 evil']],
    () => [['X-Forwarded-For', `${fx.spoofAddr}, 10.0.0.1`]],
    (r) => spoof(r, 1),
  ];
  const gen: Case[] = [];
  for (let i = 0; i < n; i++) {
    const hs: Array<[string, string]> = [...spoof(rng)];
    const k = int(rng, 1, 3);
    for (let j = 0; j < k; j++) hs.push(...pick(rng, mutations)(rng));
    shuffle(rng, hs);
    const method = pick(rng, ['GET', 'POST', 'HEAD']);
    const r = req({ method, target: pick(rng, TARGETS.slice(0, 12)), headers: hs, ...(method === 'POST' ? { body: 'b'.repeat(int(rng, 0, 30)) } : {}) });
    const needsAnswer = hs.some(([k]) => k === 'Expect' || k === 'Host');
    gen.push(send(`random headers ${hs.map(([k]) => k).join(',')}`, r, { heads: method === 'HEAD' ? [0] : [], ...(needsAnswer ? { mustAnswer: notError } : {}) }));
  }
  return [...fixed, ...gen];
}

/** A condition for a client step: the upstream received a request for `target` after this point. */
function upstreamHas(target: string): () => boolean {
  const from = fx.up.records.length;
  return () => fx.up.records.slice(from).some((r) => r.target === target);
}

const SMUGGLED = () => req({ target: `/llm/smuggled-${++idSeq}`, headers: forged() });

function framingCases(rng: Rng, n: number): Case[] {
  const post = (extra: string, body: string) => `POST /llm/f HTTP/1.1\r\nHost: fuzz.test\r\n${extra}\r\n${body}`;
  const fixed: Case[] = [
    send('Content-Length body', req({ method: 'POST', target: '/llm', body: 'hello' })),
    send('Content-Length: 0', req({ method: 'POST', target: '/llm', body: '' })),
    send('chunked body', req({ method: 'POST', target: '/llm', chunks: ['hel', 'lo'] })),
    send('chunked with extensions', req({ method: 'POST', target: '/llm', chunks: ['hel', 'lo'], ext: ';name=value' })),
    send('chunked with a quoted extension', req({ method: 'POST', target: '/llm', chunks: ['hi'], ext: ';a="b;c"' })),
    send('chunked with a 20 KiB extension', req({ method: 'POST', target: '/llm', chunks: ['hi'], ext: `;x=${'e'.repeat(20_480)}` })),
    send('chunked with trailers', req({ method: 'POST', target: '/llm', chunks: ['hi'], trailers: [['X-Trailer', 'v']] })),
    send('chunked with a Content-Length trailer', req({ method: 'POST', target: '/llm', chunks: ['hi'], trailers: [['Content-Length', '100']] })),
    send('chunked with a Host trailer', req({ method: 'POST', target: '/llm', chunks: ['hi'], trailers: [['Host', 'evil.example']] })),
    send('chunked with a malformed trailer', post('Transfer-Encoding: chunked\r\n', '2\r\nhi\r\n0\r\nno colon\r\n\r\n')),
    send('chunk size with leading zeros', post('Transfer-Encoding: chunked\r\n', '0002\r\nhi\r\n0\r\n\r\n')),
    send('chunk size in upper-case hex', post('Transfer-Encoding: chunked\r\n', 'A\r\n0123456789\r\n0\r\n\r\n')),
    send('chunk size followed by spaces', post('Transfer-Encoding: chunked\r\n', '2  \r\nhi\r\n0\r\n\r\n')),
    send('chunk size 0x2', post('Transfer-Encoding: chunked\r\n', '0x2\r\nhi\r\n0\r\n\r\n')),
    send('negative chunk size', post('Transfer-Encoding: chunked\r\n', '-2\r\nhi\r\n0\r\n\r\n')),
    send('chunk size that overflows 64 bits', post('Transfer-Encoding: chunked\r\n', 'fffffffffffffffff2\r\nhi\r\n0\r\n\r\n')),
    send('non-hex chunk size', post('Transfer-Encoding: chunked\r\n', 'zz\r\nhi\r\n0\r\n\r\n')),
    send('chunk data without its CRLF', post('Transfer-Encoding: chunked\r\n', '2\r\nhiX0\r\n\r\n')),
    send('chunk data longer than its size', post('Transfer-Encoding: chunked\r\n', '2\r\nhello\r\n0\r\n\r\n')),
    send('bare LF in chunked framing', post('Transfer-Encoding: chunked\r\n', '2\nhi\n0\n\n')),
    send('CL.TE smuggling', post('Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED()}`), { complete: 2, expect: 2 }),
    ((inner) => send('TE.CL smuggling', post('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', `${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`), { complete: 2, expect: 2 }))(SMUGGLED()),
    send('Transfer-Encoding: xchunked + CL', post('Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n', `0\r\n\r\n${SMUGGLED()}`), { complete: 2, expect: 2 }),
    send('Transfer-Encoding with a space before the colon', post('Transfer-Encoding : chunked\r\nContent-Length: 5\r\n', `0\r\n\r\n${SMUGGLED()}`), { complete: 2, expect: 2 }),
    send('Transfer-Encoding with a tab', post('Transfer-Encoding:\tchunked\r\n', '2\r\nhi\r\n0\r\n\r\n')),
    send('Transfer-Encoding: chunked, identity', post('Transfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n', `0\r\n\r\n${SMUGGLED()}`), { complete: 2, expect: 2 }),
    send('Transfer-Encoding: identity, chunked', post('Transfer-Encoding: identity, chunked\r\n', '2\r\nhi\r\n0\r\n\r\n')),
    send('Transfer-Encoding: gzip, chunked', post('Transfer-Encoding: gzip, chunked\r\n', '2\r\nhi\r\n0\r\n\r\n')),
    send('Transfer-Encoding: identity only', post('Transfer-Encoding: identity\r\n', 'hi')),
    send('Transfer-Encoding: CHUNKED', post('Transfer-Encoding: CHUNKED\r\n', '2\r\nhi\r\n0\r\n\r\n')),
    send('two Transfer-Encoding headers', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n', '2\r\nhi\r\n0\r\n\r\n')),
    send('Transfer-Encoding folded into the previous header', post('X-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n', `0\r\n\r\n${SMUGGLED()}`), { complete: 2, expect: 2 }),
    send('Transfer-Encoding on HTTP/1.0', 'POST /llm HTTP/1.0\r\nHost: fuzz.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n'),
    send('chunked GET with an empty body', req({ target: '/llm', chunks: [] })),
    send('Content-Length body then garbage', `${req({ method: 'POST', target: '/llm', body: 'abc' })}XYZ\r\n\r\n`, { complete: 2, expect: 2 }),
    send('Content-Length body then an extra CRLF', `${req({ method: 'POST', target: '/llm', body: 'abc' })}\r\n`),
    send('Content-Length body, CRLF, then a request', `${req({ method: 'POST', target: '/llm', body: 'abc' })}\r\n${req({ target: '/llm/next' })}`, { complete: 2, expect: 2 }),
    send('POST without framing, then bytes', `POST /llm HTTP/1.1\r\nHost: fuzz.test\r\n\r\nhello=world`, { complete: 2, expect: 2 }),
    send('GET with a body', req({ target: '/llm', body: 'abc' })),
    send('100 KiB Content-Length body (streamed)', req({ method: 'POST', target: '/llm', body: 'x'.repeat(102_400) })),
    send('100 KiB chunked body', req({ method: 'POST', target: '/llm', chunks: Array.from({ length: 10 }, () => 'y'.repeat(10_240)) })),
    truncated('request line only', 'GET /llm HTTP/1.1\r\n'),
    truncated('headers without the final CRLF', 'GET /llm HTTP/1.1\r\nHost: fuzz.test\r\n'),
    truncated('Content-Length 100, 10 bytes sent', post('Content-Length: 100\r\n', 'x'.repeat(10))),
    truncated('chunked, partial chunk', post('Transfer-Encoding: chunked\r\n', 'a\r\n01234')),
    truncated('chunked, no last chunk', post('Transfer-Encoding: chunked\r\n', '2\r\nhi\r\n')),
    truncated('chunked, last chunk without the final CRLF', post('Transfer-Encoding: chunked\r\n', '2\r\nhi\r\n0\r\n')),
    truncated('complete request then half a request', req({ target: '/llm' }) + 'GET /llm/half HTTP/1.1\r\nHo', { complete: 1 }),
    send('pipeline: Connection: close in the middle', req({ target: '/llm/1' }) + req({ target: '/llm/2', headers: [['Connection', 'close']] }) + req({ target: '/llm/3' }), { complete: 2, expect: 2 }),
    send('pipeline: HEAD then GET', req({ method: 'HEAD', target: '/llm' }) + req({ target: '/' }), { complete: 2, expect: 2, heads: [0] }),
  ];
  // A request in progress at the upstream (a slow app) when garbage follows on the connection.
  for (const [label, first] of [
    ['chunked POST', req({ method: 'POST', target: '/llm/slow-app', chunks: ['hi'] })],
    ['Content-Length POST', req({ method: 'POST', target: '/llm/slow-app', body: 'hi' })],
    ['GET', req({ target: '/llm/slow-app' })],
  ] as const) {
    fixed.push({
      name: `${label} to a slow app, then garbage once the upstream has it`,
      steps: [{ send: first }, { awaitCondition: upstreamHas('/llm/slow-app') }, { send: 'GARBAGE\r\n\r\n' }],
      complete: 1,
      expect: 2,
    });
  }
  {
    // A POST written one byte per write.
    const bytes = req({ method: 'POST', target: '/llm/bytewise', body: 'hello', headers: forged() });
    fixed.push({ name: 'POST written one byte at a time', steps: [...bytes].map((ch) => ({ send: ch })), complete: 1, expect: 1 });
  }
  const malformations: Array<(r: Rng) => { text: string; extra: number }> = [
    () => ({ text: post('Content-Length: 4\r\nTransfer-Encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED()}`), extra: 1 }),
    () => ({ text: post('Transfer-Encoding: chunked\r\n', 'zz\r\nhi\r\n0\r\n\r\n'), extra: 0 }),
    () => ({ text: post('Content-Length: 2\r\nContent-Length: 3\r\n', 'abc'), extra: 0 }),
    () => ({ text: 'GET /llm HTTP/1.1\r\nHost: fuzz.test\r\nBad Header\r\n\r\n', extra: 0 }),
    () => ({ text: 'GET /llm HTTP/1.1\r\nHost: fuzz.test\r\nX: a\r\n b\r\n\r\n', extra: 0 }),
    () => ({ text: req({ target: '/llm', headers: [['Expect', '100-continue']], body: 'e' }), extra: 0 }),
    () => ({ text: req({ target: '/llm', headers: [['Host', 'evil.example']] }), extra: 0 }),
    () => ({ text: req({ method: 'OPTIONS', target: '*' }), extra: 0 }),
  ];
  const gen: Case[] = [];
  for (let i = 0; i < n; i++) {
    const count = int(rng, 1, 5);
    const parts: string[] = [];
    const heads: number[] = [];
    let complete = 0;
    for (let j = 0; j < count; j++) {
      const kind = int(rng, 0, 3);
      const headers = spoof(rng, 0.3);
      const target = pick(rng, TARGETS.slice(0, 16));
      if (kind === 0) {
        const method = pick(rng, ['GET', 'HEAD', 'DELETE']);
        if (method === 'HEAD') heads.push(j);
        parts.push(req({ method, target, headers }));
      } else if (kind === 1) parts.push(req({ method: 'POST', target, headers, body: 'p'.repeat(int(rng, 0, 200)) }));
      else if (kind === 2) {
        const chunks = Array.from({ length: int(rng, 0, 4) }, () => 'c'.repeat(int(rng, 1, 50)));
        parts.push(req({ method: 'POST', target, headers, chunks, ...(rng() < 0.3 ? { ext: ';e=1' } : {}), ...(rng() < 0.3 ? { trailers: [['X-T', 't']] } : {}) }));
      } else {
        const m = pick(rng, malformations)(rng);
        parts.push(m.text);
        complete += m.extra;
      }
      complete++;
    }
    const text = parts.join('');
    const mode = rng();
    if (mode < 0.2) {
      // Cut somewhere and half-close: at most the requests wholly before the cut.
      const cut = int(rng, 1, text.length - 1);
      gen.push(truncated(`random pipeline of ${count}, cut at byte ${cut}`, text.slice(0, cut), { complete }));
    } else if (mode < 0.5) {
      // Same bytes in random pieces.
      const steps: ClientStep[] = [];
      let pos = 0;
      while (pos < text.length) {
        const len = int(rng, 1, Math.max(1, Math.floor(text.length / 3)));
        steps.push({ send: text.slice(pos, pos + len) });
        pos += len;
      }
      gen.push({ name: `random pipeline of ${count} in ${steps.length} writes`, steps, complete, expect: count, heads });
    } else gen.push(send(`random pipeline of ${count}`, text, { complete, expect: count, heads }));
  }
  return [...fixed, ...gen];
}

function upgradeCases(rng: Rng, n: number): Case[] {
  const up = (target: string, extra: Array<[string, string]> = [], o: Req = {}) =>
    req({ target, headers: [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='], ...extra], ...o });
  const after = (target: string) => req({ target, headers: forged() });
  const fixed: Case[] = [];
  for (const status of [403, 426, 200, 404]) {
    fixed.push({
      name: `Upgrade answered ${status}, then a request on the same connection`,
      steps: [{ send: up('/') }, { awaitResponses: 1 }, { send: after('/llm/after-upgrade') }],
      complete: 2,
      expect: 2,
      upgradeStatus: status,
    });
  }
  fixed.push(
    send('Upgrade answered 403 with a request pipelined behind it', up('/ws') + after('/llm/pipelined'), { complete: 2, expect: 2, upgradeStatus: 403 }),
    send('Upgrade with a body, answered 403, then a request', up('/ws', [], { body: 'hello' }) + after('/llm/v2/x'), { complete: 2, expect: 2, upgradeStatus: 403 }),
    send('h2c upgrade answered 200, then a request', req({ target: '/llm', headers: [['Connection', 'Upgrade, HTTP2-Settings'], ['Upgrade', 'h2c'], ['HTTP2-Settings', 'AAMAAABkAAQCAAAAAAIAAAAA']] }) + after('/'), {
      complete: 2,
      expect: 2,
      upgradeStatus: 200,
    }),
    {
      name: 'Upgrade answered 101, bytes spliced both ways',
      steps: [{ send: up('/llm/ws') }, { awaitResponses: 1 }, { send: 'tunnel bytes, not HTTP\r\n\r\n' }],
      complete: 1,
      expect: 1,
      upgradeStatus: 101,
    },
    send('Upgrade with absolute-form target, answered 403, then a request', up('http://fuzz.test/llm/ws') + after('/llm/v2'), { complete: 2, expect: 2, upgradeStatus: 403 }),
    send('Upgrade with two Host headers', up('/llm/ws', [['Host', 'evil.example']]), { mustAnswer: notError, upgradeStatus: 403 }),
    send('Upgrade with forged forwarding headers, answered 426', up('/llm/ws', forged()), { upgradeStatus: 426 }),
    send('Upgrade on a POST with chunked body, answered 403, then a request', up('/llm/ws', [], { method: 'POST', chunks: ['ab'] }) + after('/x'), { complete: 2, expect: 2, upgradeStatus: 403 }),
  );
  const gen: Case[] = [];
  for (let i = 0; i < n; i++) {
    const status = pick(rng, [101, 200, 400, 403, 404, 426, 426]);
    const target = pick(rng, TARGETS.slice(0, 12));
    const followers = status === 101 ? 0 : int(rng, 0, 2);
    const first = up(target, spoof(rng));
    const rest = Array.from({ length: followers }, () => after(pick(rng, TARGETS.slice(0, 12)))).join('');
    if (status === 101) {
      gen.push({ name: `random upgrade ${status} ${target}`, steps: [{ send: first }, { awaitResponses: 1 }, { send: 'GET /llm HTTP/1.1\r\n\r\n' }], complete: 1, expect: 1, upgradeStatus: status });
    } else if (rng() < 0.5) {
      gen.push(send(`random upgrade ${status} ${target}, ${followers} pipelined`, first + rest, { complete: 1 + followers, expect: 1 + followers, upgradeStatus: status }));
    } else {
      gen.push({
        name: `random upgrade ${status} ${target}, ${followers} after the answer`,
        steps: [{ send: first }, { awaitResponses: 1 }, ...(followers > 0 ? [{ send: rest }] : [])],
        complete: 1 + followers,
        expect: 1 + followers,
        upgradeStatus: status,
      });
    }
  }
  return [...fixed, ...gen];
}

function pathCases(rng: Rng, n: number): Case[] {
  const fixed = TARGETS.map((t) => send(`target ${showBytes(t, 80)}`, req({ target: t })));
  const gen: Case[] = [];
  for (let i = 0; i < n; i++) {
    let t = rng() < 0.8 ? '/' : pick(rng, ['http://fuzz.test/', 'http://x/']);
    const k = int(rng, 1, 5);
    for (let j = 0; j < k; j++) t += pick(rng, PATH_PIECES);
    t = t.replace(/^\/\//, rng() < 0.5 ? '/' : '//');
    gen.push(send(`random target ${showBytes(t, 80)}`, req({ method: pick(rng, ['GET', 'POST']), target: t, headers: spoof(rng), body: rng() < 0.3 ? 'b' : '' })));
  }
  return [...fixed, ...gen];
}

// ── running a case ────────────────────────────────────────────────────────

interface CaseReport {
  readonly name: string;
  readonly problems: string[];
  readonly sent: string;
  readonly upstream: string[];
  readonly client: string;
}

/** Counts that are zero when the gateway is idle (requests, upgrades, permits, upstream connections in use). */
function gatewayState(): Map<string, number> {
  const m = new Map<string, number>();
  m.set('requests active in the gateway', fx.gw.proxy.counters.activeRequests);
  m.set('upstream connections mid-request', fx.up.partial);
  m.set('upgrades open', fx.gw.upgrades.open);
  m.set('upstream connections streaming or tunnelling', fx.up.busy - fx.up.partial);
  for (const [key, l] of fx.gw.reconciler.limiters) {
    m.set(`permits held on ${key.replace('\0', '×')}`, l.inFlight);
    m.set(`queued on ${key.replace('\0', '×')}`, l.queued);
  }
  return m;
}

const SOFT_KEYS = new Set(['requests active in the gateway', 'upstream connections mid-request']);

/**
 * Why the gateway is not idle yet, or null when it is. Idle is measured against
 * `fx.baseline`: what an earlier case leaked (already reported there) is not
 * blamed on the next ones. `strict` also wants upgrades, tunnels and permits back.
 */
function busyState(strict: boolean): string | null {
  const parts: string[] = [];
  for (const [k, v] of gatewayState()) {
    if (!strict && !SOFT_KEYS.has(k)) continue;
    const base = fx.baseline.get(k) ?? 0;
    if (v > base) parts.push(`${v - base} ${k}`);
  }
  return parts.length === 0 ? null : parts.join(', ');
}

async function settle(strict: boolean, ms: number): Promise<string | null> {
  try {
    await waitFor(() => busyState(strict) === null, ms, 'gateway idle');
    return null;
  } catch {
    return busyState(strict);
  }
}

async function clusterCounters(gw: Gateway): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  const status = (await (await fetch(`${gw.adminUrl}/api/v1/status`, { signal: AbortSignal.timeout(10_000) })).json()) as { apps: Array<{ name: string; clusters: Array<{ cluster: string; step: { errors: number } }> }> };
  for (const a of status.apps) for (const c of a.clusters) m.set(`rollout-gate errors ${a.name}/${c.cluster}`, c.step.errors);
  const text = await (await fetch(`${gw.adminUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  for (const line of text.split('\n')) {
    const att = /^serve_gateway_upstream_attempts_total\{cluster="([^"]*)",outcome="([^"]*)"\} (\d+)/.exec(line);
    if (att !== null && att[2] !== 'ok') m.set(`upstream attempts ${att[2]} on ${att[1]}`, Number(att[3]));
    const req5 = /^serve_gateway_requests_total\{app="([^"]*)",cluster="([^"]*)",code="(5\d\d)",flag="([^"]*)"\} (\d+)/.exec(line);
    if (req5 !== null) m.set(`requests ${req5[3]} ${req5[4]} ${req5[1]}/${req5[2]}`, Number(req5[5]));
  }
  return m;
}

function describeResponses(res: ExchangeResult): string {
  const parts = res.responses.map((r) => {
    const flag = responseHeader(r, 'x-gateway-flag');
    return `${r.status}${flag ? ` ${flag}` : ''} ${JSON.stringify(showBytes(r.body, 120))}`;
  });
  if (res.interim.length > 0) parts.unshift(`interim ${res.interim.map((r) => r.status).join(',')}`);
  return `[${parts.join(' | ')}] end=${res.end}${res.error ? ` error=${res.error}` : ''}${res.unparsed ? ` unparsed=${JSON.stringify(showBytes(res.unparsed, 200))}` : ''}`;
}

async function runCase(c: Case): Promise<CaseReport | null> {
  const problems: string[] = [];
  const crashMark = crashes.length;
  fx.up.upgradeStatus = c.upgradeStatus ?? 426;
  const recMark = fx.up.records.length;
  const logMark = fx.log.length;
  const res = await rawExchange({
    port: fx.port,
    localAddress: fx.clientAddr,
    steps: c.steps,
    expectResponses: c.expect,
    isHead: (i) => c.heads?.includes(i) ?? false,
    deadlineMs: EXCHANGE_DEADLINE_MS,
    // Before closing, give stragglers (a smuggled second request) the chance to show.
    linger: async () => void (await settle(false, 1_000)),
  });
  if (VERBOSE) console.log(`  exchange: ${describeResponses(res)}`); // eslint-disable-line no-console
  // Once a group has shown two leaks it fails anyway: later cases wait less, so a
  // leaking gateway does not make the file slow (their report says so).
  const settleMs = fx.groupLeaks >= 2 ? SETTLE_AFTER_LEAKS_MS : SETTLE_MS;
  const stuck = await settle(true, settleMs);
  if (VERBOSE) console.log(`  settled: ${stuck}`); // eslint-disable-line no-console
  if (stuck !== null) {
    problems.push(`leak: ${stuck}, ${settleMs / 1000} s after the client closed${settleMs < SETTLE_MS ? ' (short wait: this group already leaked)' : ''}`);
    fx.baseline = gatewayState();
    fx.groupLeaks++;
  }
  fx.up.upgradeStatus = 426;

  // Client side.
  if (res.end === 'deadline') problems.push(`the gateway neither answered (${res.responses.length}/${c.expect}) nor closed within ${EXCHANGE_DEADLINE_MS / 1000} s`);
  for (const [i, r] of res.responses.entries()) {
    const flag = responseHeader(r, 'x-gateway-flag');
    if (r.status >= 500) problems.push(`response ${i} is ${r.status}${flag ? ` (flag ${flag})` : ''}: the upstream never sends 5xx, so the gateway answered a client's request with a server error`);
    else if (flag !== undefined && !is4xx(r.status)) problems.push(`response ${i} is a local reply ${r.status} ${flag}, not a 4xx`);
  }
  if (c.mustAnswer !== undefined) {
    const first = res.responses[0];
    if (first === undefined) problems.push(`no response at all (connection ${res.end}${res.error ? `, ${res.error}` : ''})`);
    else if (!c.mustAnswer(first.status)) problems.push(`first response ${first.status} is not an acceptable answer here`);
  }
  if (res.unparsed !== null) problems.push(`bytes from the gateway that are not an HTTP response: ${showBytes(res.unparsed, 200)}`);

  // Upstream side.
  const recs = fx.up.records.slice(recMark);
  if (recs.length > c.complete) problems.push(`the upstream got ${recs.length} requests; the client sent at most ${c.complete} complete requests`);
  const logs = fx.log.slice(logMark);
  for (const r of recs) {
    const where = `upstream request #${r.seq} ${showBytes(r.method, 20)} ${showBytes(r.target, 80)}`;
    if (r.malformed !== null) problems.push(`${where}: not a valid request at the upstream (${r.malformed})`);
    const ids = RawUpstream.values(r, 'x-request-id');
    if (ids.length !== 1 || ids[0] === '') problems.push(`${where}: ${ids.length} x-request-id headers ${JSON.stringify(ids)}`);
    const xff = RawUpstream.values(r, 'x-forwarded-for');
    const lastHop = xff.length === 1 ? xff[0]!.split(',').at(-1)!.trim() : null;
    if (lastHop !== fx.clientAddr) problems.push(`${where}: x-forwarded-for ${JSON.stringify(xff)}, not ending with the client's address ${fx.clientAddr}`);
    const hosts = RawUpstream.values(r, 'host');
    if (hosts.length > 1) problems.push(`${where}: ${hosts.length} Host headers ${JSON.stringify(hosts)}`);
    const id = ids[0];
    if (id !== undefined) {
      const n = (fx.seenIds.get(id) ?? 0) + 1;
      fx.seenIds.set(id, n);
      if (n > 1) problems.push(`${where}: request id ${id} reached the upstream ${n} times`);
      const entry = logs.find((e) => e.requestId === id);
      const want = serveApp(r.target);
      if (entry === undefined) problems.push(`${where}: no access-log entry for id ${id}: the gateway never handled it as a request (Serve routes it to '${want}')`);
      else if (entry.app !== want) problems.push(`${where}: the gateway admitted it for app '${entry.app}', Serve routes it to '${want}'`);
    }
  }

  // Cluster error counters.
  const counters = await clusterCounters(fx.gw);
  for (const [k, v] of counters) {
    const was = fx.counters.get(k) ?? 0;
    if (v > was) problems.push(`${k} went ${was} → ${v} (a client fault counted against the cluster)`);
  }
  fx.counters = counters;

  for (const stack of crashes.slice(crashMark)) problems.push(`the gateway threw (its process would exit): ${stack.split('\n').slice(0, 3).join(' | ')}`);
  if (VERBOSE) console.log('  counters read'); // eslint-disable-line no-console
  // The gateway still serves.
  const liveMark = fx.up.records.length;
  const live = await rawExchange({
    port: fx.port,
    localAddress: fx.clientAddr,
    steps: [{ send: req({ target: `/llm/alive-${++fx.liveSeq}` }) }],
    expectResponses: 1,
    deadlineMs: EXCHANGE_DEADLINE_MS,
  });
  if (live.responses[0]?.status !== 200 || fx.up.records.length !== liveMark + 1) {
    problems.push(`a normal request afterwards got ${describeResponses(live)} (upstream saw ${fx.up.records.length - liveMark})`);
  } else {
    const id = RawUpstream.values(fx.up.records[liveMark]!, 'x-request-id')[0];
    if (id !== undefined) fx.seenIds.set(id, 1);
  }
  if ((await settle(true, SETTLE_MS)) !== null) fx.baseline = gatewayState();
  fx.counters = await clusterCounters(fx.gw);

  if (problems.length === 0) return null;
  return {
    name: c.name,
    problems,
    // Write boundaries show as ⟫ when the case wrote in pieces.
    sent: res.sent.length > 1 && res.sent.length <= 40 ? res.sent.map((b) => showBytes(b, 300)).join(' ⟫ ') : showBytes(Buffer.concat(res.sent), 700),
    upstream: recs.map((r) => `#${r.seq} conn ${r.conn}${r.onConnIndex > 0 ? ` (request ${r.onConnIndex + 1} on it)` : ''}: ${showBytes(r.rawHead, 500)}${r.body.length > 0 ? ` +body ${JSON.stringify(showBytes(r.body, 80))}` : ''} → answered ${r.answered}`),
    client: describeResponses(res),
  };
}

function formatReport(r: CaseReport): string {
  return [
    `✗ ${r.name}`,
    ...r.problems.map((p) => `    - ${p}`),
    `    sent:     ${r.sent}`,
    `    upstream: ${r.upstream.length === 0 ? '(nothing)' : r.upstream.join('\n              ')}`,
    `    client:   ${r.client}`,
  ].join('\n');
}

async function runGroup(t: { diagnostic(m: string): void; name: string }, make: (rng: Rng, n: number) => Case[]): Promise<void> {
  const rng = seededRandom((SEED ^ hashString(t.name)) >>> 0);
  const cases = make(rng, CASES_PER_GROUP);
  fx.groupLeaks = 0;
  const start = performance.now();
  const failed: CaseReport[] = [];
  let ran = 0;
  for (const c of cases) {
    if (c.name.startsWith('random') && performance.now() - start > GROUP_BUDGET_MS) break;
    if (VERBOSE) console.log(`case: ${c.name}`); // eslint-disable-line no-console
    const r = await runCase(c);
    ran++;
    if (r !== null) failed.push(r);
  }
  fx.totalCases += ran;
  const line = `seed ${SEED}: ${ran}/${cases.length} cases in ${((performance.now() - start) / 1000).toFixed(1)} s, ${failed.length} with violations`;
  t.diagnostic(line);
  if (failed.length > 0) {
    const shown = failed.slice(0, REPORT_MAX).map(formatReport).join('\n');
    assert.fail(`${failed.length} of ${ran} cases broke an invariant (${line}):\n${shown}${failed.length > REPORT_MAX ? `\n… and ${failed.length - REPORT_MAX} more: ${failed.slice(REPORT_MAX).map((f) => f.name).join('; ')}` : ''}`);
  }
}

// ── the groups ────────────────────────────────────────────────────────────

test('fuzz: request lines, methods (CONNECT, OPTIONS *, TRACE), absolute-form, versions', { timeout: GROUP_TIMEOUT_MS }, async (t) => {
  await runGroup(t, requestLineCases);
});

test('fuzz: headers (duplicate Host, Expect: 100-continue, obs-fold, oversized, forged forwarding headers)', { timeout: GROUP_TIMEOUT_MS }, async (t) => {
  await runGroup(t, headerCases);
});

test('fuzz: body framing (CL/TE conflicts, smuggling, chunked, trailers, truncation, pipelining)', { timeout: GROUP_TIMEOUT_MS }, async (t) => {
  await runGroup(t, framingCases);
});

test('fuzz: Upgrade answered with a non-101 never splices the connection', { timeout: GROUP_TIMEOUT_MS }, async (t) => {
  await runGroup(t, upgradeCases);
});

test('fuzz: percent-escapes and odd paths are admitted for the app Serve routes them to', { timeout: GROUP_TIMEOUT_MS }, async (t) => {
  await runGroup(t, pathCases);
});

test('fuzz: after all cases the gateway still closes', { timeout: 60_000 }, async () => {
  const left = [...gatewayState()].filter(([k, v]) => v > 0 && !k.startsWith('upstream')).map(([k, v]) => `${v} ${k}`);
  const closed = await closeAll();
  assert.ok(closed, `gateway close() did not finish within 10 s after the fuzz (left before closing: ${left.join(', ') || 'nothing'})`);
});

// ── seeded randomness ─────────────────────────────────────────────────────

type Rng = () => number;


function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)]!;
}

function int(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

function shuffle<T>(rng: Rng, xs: T[]): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
}

function parseSeed(s: string | undefined): number | null {
  if (s === undefined || s === '') return null;
  const n = s.startsWith('0x') ? parseInt(s, 16) : Number(s);
  return Number.isFinite(n) ? n >>> 0 : null;
}

// Closed-loop load client for the switch-under-load scenario (bench/switch.ts).
//
//   node bench/lib/switch-client.ts --url http://127.0.0.1:18090/llm --connections 32 --seconds 20 --out FILE
//
// C workers, one keep-alive connection each (undici Pool, pipelining 1), each sending POST /llm back
// to back until --seconds have passed. Every request is recorded: start and end (ms since the
// client's t0, which is also written as epoch ms so the driver can line its own events up), status
// (0 = no response), x-serve-cluster, and the error message for socket-level failures. Unlike
// autocannon, a request lost on a closed connection is an error here, not silently re-sent.
import { writeFileSync } from 'node:fs';
import { Pool } from 'undici';

type Args = { url: string; connections: number; seconds: number; out: string; body: string };

function parse(argv: readonly string[]): Args {
  const a: Args = {
    url: '',
    connections: 32,
    seconds: 20,
    out: '',
    body: '{"model":"llm","prompt":"Write one short sentence about the oceans.","max_tokens":16,"stream":false}',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1] ?? '';
    if (k === '--url') a.url = v;
    else if (k === '--connections') a.connections = Number(v);
    else if (k === '--seconds') a.seconds = Number(v);
    else if (k === '--out') a.out = v;
    else if (k === '--body') a.body = v;
    else throw new Error(`unknown option ${String(k)}`);
  }
  if (a.url === '' || a.out === '' || !(a.connections >= 1) || !(a.seconds > 0)) throw new Error('need --url, --out, --connections >= 1, --seconds > 0');
  return a;
}

/** Columnar per-request records (compact JSON for ~10^5 requests). */
export type SwitchClientOut = {
  t0EpochMs: number;
  connections: number;
  seconds: number;
  wallMs: number;
  clusters: string[];
  /** per request: start ms since t0 (3 decimals) */
  start: number[];
  /** per request: end ms since t0 */
  end: number[];
  status: number[];
  /** per request: index into clusters, -1 when the reply had no x-serve-cluster */
  cluster: number[];
  /** request index → error text, for requests with no response or a broken body */
  errors: Record<string, string>;
};

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const u = new URL(a.url);
  const pool = new Pool(u.origin, {
    connections: a.connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const out: SwitchClientOut = {
    t0EpochMs: 0,
    connections: a.connections,
    seconds: a.seconds,
    wallMs: 0,
    clusters: [],
    start: [],
    end: [],
    status: [],
    cluster: [],
    errors: {},
  };
  const clusterIdx = new Map<string, number>();
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  const headers = { 'content-type': 'application/json' };
  const t0 = performance.now();
  out.t0EpochMs = performance.timeOrigin + t0;
  const stopAt = t0 + a.seconds * 1000;
  process.stdout.write(`t0 ${out.t0EpochMs.toFixed(3)}\n`);

  const worker = async (): Promise<void> => {
    while (performance.now() < stopAt) {
      const s = performance.now();
      let status = 0;
      let cl = -1;
      let err: string | null = null;
      try {
        const res = await pool.request({ method: 'POST', path: u.pathname + u.search, headers, body: a.body });
        status = res.statusCode;
        const h = res.headers['x-serve-cluster'];
        const name = Array.isArray(h) ? h[0] : h;
        if (typeof name === 'string') {
          let k = clusterIdx.get(name);
          if (k === undefined) {
            k = out.clusters.length;
            out.clusters.push(name);
            clusterIdx.set(name, k);
          }
          cl = k;
        }
        await res.body.text();
      } catch (e) {
        const ee = e as { code?: string; message?: string };
        err = `${ee.code ?? 'ERR'}: ${ee.message ?? String(e)}`;
      }
      const e = performance.now();
      const i = out.start.length;
      out.start.push(r3(s - t0));
      out.end.push(r3(e - t0));
      out.status.push(status);
      out.cluster.push(cl);
      if (err !== null) out.errors[String(i)] = err;
    }
  };
  await Promise.all(Array.from({ length: a.connections }, () => worker()));
  out.wallMs = performance.now() - t0;
  await pool.close().catch(() => undefined);
  writeFileSync(a.out, JSON.stringify(out));
}

main().catch((e: unknown) => {
  process.stderr.write(`switch-client: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});

// Concurrent SSE stream client for the bench: opens N connections at once (undici Pool with
// connections: N, pipelining 1), each does one streaming GET, and records per stream the time to
// response headers, time to the first body chunk, total time, frames and the largest gap.
// Bounded: a hard stop destroys the pool and reports whatever finished.
// Writes one JSON object to --out (or stdout).
//
// Usage: node bench/stream-client.ts --url http://127.0.0.1:18080/llm/stream?n=400&i=25
//          [--streams 1000] [--frames 400] [--hard-stop-ms 40000] [--out result.json]
import { writeFileSync } from 'node:fs';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return process.argv[i + 1] !== undefined && i >= 0 ? (process.argv[i + 1] as string) : dflt;
}

const url = new URL(flag('--url', 'http://127.0.0.1:18000/llm/stream?n=400&i=25'));
const streams = Number(flag('--streams', '1000'));
const frames = Number(flag('--frames', url.searchParams.get('n') ?? '400'));
const hardStopMs = Number(flag('--hard-stop-ms', '40000'));
const outFile = flag('--out', '');

export type StreamResult = {
  status: number;
  ttfbMs: number; // response headers
  ttfcMs: number; // first body byte
  totalMs: number;
  frames: number;
  maxGapMs: number;
  done: boolean; // saw data: [DONE] and the response ended
  error: string | null;
};

const DONE = Buffer.from('data: [DONE]\n\n');

function runOne(pool: Pool, path: string, t0: number): Promise<StreamResult> {
  return new Promise((resolve) => {
    const r: StreamResult = {
      status: 0,
      ttfbMs: Number.NaN,
      ttfcMs: Number.NaN,
      totalMs: Number.NaN,
      frames: 0,
      maxGapMs: 0,
      done: false,
      error: null,
    };
    let last = 0;
    let prevNl = false; // previous chunk ended with '\n' (a "\n\n" split across chunks)
    let tailBuf = Buffer.alloc(0);
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {},
      onResponseStart(_controller, statusCode) {
        r.status = statusCode;
        r.ttfbMs = performance.now() - t0;
      },
      onResponseData(_controller, chunk) {
        const now = performance.now();
        if (Number.isNaN(r.ttfcMs)) r.ttfcMs = now - t0;
        else if (now - last > r.maxGapMs) r.maxGapMs = now - last;
        last = now;
        // count SSE frame terminators "\n\n"
        let from = 0;
        if (prevNl && chunk[0] === 10) {
          r.frames++;
          from = 1;
        }
        for (let k = chunk.indexOf(10, from); k >= 0; k = chunk.indexOf(10, k + 1)) {
          if (chunk[k + 1] === 10) {
            r.frames++;
            k++;
          }
        }
        prevNl = chunk[chunk.length - 1] === 10;
        tailBuf = Buffer.concat([tailBuf, chunk]).subarray(-DONE.length);
      },
      onResponseEnd() {
        r.totalMs = performance.now() - t0;
        r.done = r.status === 200 && tailBuf.equals(DONE);
        finish();
      },
      onResponseError(_controller, err) {
        r.totalMs = performance.now() - t0;
        r.error = err.message;
        finish();
      },
    };
    try {
      pool.dispatch({ method: 'GET', path, headers: { accept: 'text/event-stream' } }, handler);
    } catch (e) {
      r.error = e instanceof Error ? e.message : String(e);
      finish();
    }
  });
}

async function main(): Promise<void> {
  const pool = new Pool(url.origin, {
    connections: streams,
    pipelining: 1,
    connectTimeout: 30_000,
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: 1_000,
  });
  const path = url.pathname + url.search;
  const results: StreamResult[] = [];
  const t0 = performance.now();
  const all = Array.from({ length: streams }, () => runOne(pool, path, t0).then((r) => results.push(r)));
  let hardStopped = false;
  const timer = setTimeout(() => {
    hardStopped = true;
  }, hardStopMs);
  await Promise.race([Promise.all(all), new Promise((r) => setTimeout(r, hardStopMs))]);
  clearTimeout(timer);
  const wallMs = performance.now() - t0;
  const finished = results.length;
  // streams still open at the hard stop: record them as unfinished
  const out = {
    url: url.href,
    streams,
    framesExpected: frames + 1,
    hardStopMs,
    hardStopped,
    wallMs,
    finished,
    results,
  };
  const json = JSON.stringify(out) + '\n';
  if (outFile !== '') writeFileSync(outFile, json);
  else process.stdout.write(json);
  await pool.destroy().catch(() => {});
  process.exit(0);
}

void main();

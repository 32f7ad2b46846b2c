// Concurrent SSE stream client for the bench: opens N connections (undici Pool with
// connections: N, pipelining 1), each does one streaming GET, and records per stream when it was
// started, the time to response headers, time to the first body chunk, total time, frames and the
// largest gap. By default all N start at once (a burst); with --ramp-ms R stream i starts
// i*R/N ms after the start, so with R shorter than a stream all N are still open together from
// t≈R until the first ones end.
// Bounded: a hard stop (counted from the start, ramp included) destroys the pool and reports
// whatever finished, plus the streams still open at that moment under `unfinished`.
// Writes one JSON object to --out (or stdout).
//
// Usage: node bench/stream-client.ts --url http://127.0.0.1:18080/llm/stream?n=400&i=25
//          [--streams 1000] [--frames 400] [--ramp-ms 0] [--hard-stop-ms 40000] [--out result.json]
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
const rampMs = Math.max(0, Number(flag('--ramp-ms', '0')) || 0);
const outFile = flag('--out', '');

export type StreamResult = {
  index: number; // i: the stream's place in the ramp
  scheduledMs: number; // i*R/N: when it was due to start, from the client's start
  startMs: number; // when it was dispatched, from the client's start (timer lateness = startMs - scheduledMs)
  status: number;
  // the three below are measured from this stream's own start (startMs) when ramped; in a burst
  // (--ramp-ms 0) from the burst's start (t=0) as before, since all N are issued in one
  // synchronous loop and none is sent before the loop ends
  ttfbMs: number; // response headers
  ttfcMs: number; // first body byte
  totalMs: number;
  frames: number;
  maxGapMs: number;
  done: boolean; // saw data: [DONE] and the response ended
  error: string | null;
};

const DONE = Buffer.from('data: [DONE]\n\n');

function runOne(pool: Pool, path: string, t0: number, r: StreamResult): Promise<StreamResult> {
  return new Promise((resolve) => {
    const now0 = performance.now();
    r.startMs = now0 - t0;
    const ts = rampMs > 0 ? now0 : t0; // reference for ttfb/ttfc/total
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
        r.ttfbMs = performance.now() - ts;
      },
      onResponseData(_controller, chunk) {
        const now = performance.now();
        if (Number.isNaN(r.ttfcMs)) r.ttfcMs = now - ts;
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
        r.totalMs = performance.now() - ts;
        r.done = r.status === 200 && tailBuf.equals(DONE);
        finish();
      },
      onResponseError(_controller, err) {
        r.totalMs = performance.now() - ts;
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
  const records: StreamResult[] = Array.from({ length: streams }, (_, index) => ({
    index,
    scheduledMs: (index * rampMs) / streams,
    startMs: Number.NaN,
    status: 0,
    ttfbMs: Number.NaN,
    ttfcMs: Number.NaN,
    totalMs: Number.NaN,
    frames: 0,
    maxGapMs: 0,
    done: false,
    error: null,
  }));
  const finishedSet = new Set<StreamResult>();
  const timers: NodeJS.Timeout[] = [];
  const t0 = performance.now();
  const start = (r: StreamResult): Promise<void> =>
    runOne(pool, path, t0, r).then((x) => {
      finishedSet.add(x);
      results.push(x);
    });
  const all = records.map((r) =>
    r.scheduledMs <= 0
      ? start(r)
      : new Promise<void>((resolve) => {
          // delay from now, not from t0: dispatching the earlier ones took some of it already
          timers.push(setTimeout(() => void start(r).then(resolve), Math.max(0, t0 + r.scheduledMs - performance.now())));
        }),
  );
  let hardStopped = false;
  const timer = setTimeout(() => {
    hardStopped = true;
  }, hardStopMs);
  await Promise.race([Promise.all(all), new Promise((r) => setTimeout(r, hardStopMs))]);
  clearTimeout(timer);
  for (const t of timers) clearTimeout(t);
  const wallMs = performance.now() - t0;
  const finished = results.length;
  // streams still open (or not yet started) at the hard stop: recorded as they were, under unfinished
  const unfinished = records.filter((r) => !finishedSet.has(r));
  const out = {
    url: url.href,
    streams,
    framesExpected: frames + 1,
    rampMs,
    hardStopMs,
    hardStopped,
    wallMs,
    finished,
    results,
    unfinished,
  };
  const json = JSON.stringify(out) + '\n';
  if (outFile !== '') writeFileSync(outFile, json);
  else process.stdout.write(json);
  await pool.destroy().catch(() => {});
  process.exit(0);
}

void main();

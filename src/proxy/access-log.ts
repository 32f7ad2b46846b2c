// One access-log line per finished request (sampled for successes, always for
// local replies and 5xx). The production path encodes each line straight into
// a batch buffer as bytes (the entry has a fixed shape): no string per line, no
// rope to flatten, no string-to-bytes conversion at write time. Batches are
// written when they reach `flushBytes` and whenever flush() is called (the
// caller runs it on a timer and at exit). Lines keep pino's layout (level 30,
// time in ms, name), so the same tools read both logs. Measured costs are in
// docs/benchmarks.md (a pino line through sonic-boom 2.1–2.8 µs; this path is
// a fraction of that, which is what lets the gateway log every request).
import { Buffer } from 'node:buffer';

export interface AccessLog {
  log(
    requestId: string,
    method: string,
    path: string,
    app: string,
    cluster: string,
    status: number,
    flag: string,
    attempts: number,
    durationMs: number,
    ttfbMs: number,
  ): void;
}

/** Where batches go: process.stdout, a file stream, a test's collector. */
export interface ByteOutput {
  write(chunk: Buffer): unknown;
  readonly writableLength: number;
}

/**
 * Batches encoded lines into one buffer and writes it as one chunk. When the
 * output cannot keep up (more than `maxPendingBytes` queued in it), lines are
 * dropped and counted rather than held without bound. The buffer is reused
 * when the output took the last chunk synchronously (nothing left queued, as
 * for a file or a pipe with room); otherwise the output keeps it and a new one
 * is allocated.
 */
export class LineBatch {
  buf: Buffer;
  pos = 0;
  dropped = 0;
  readonly #out: ByteOutput;
  readonly #flushBytes: number;
  readonly #maxPending: number;

  constructor(out: ByteOutput, flushBytes = 64 * 1024, maxPendingBytes = 8 * 1024 * 1024) {
    this.#out = out;
    this.#flushBytes = flushBytes;
    this.#maxPending = maxPendingBytes;
    this.buf = Buffer.allocUnsafe(flushBytes + 4096);
  }

  /**
   * Makes room for a line of at most `maxBytes`; false when the line is to be
   * dropped. The caller then writes at `buf`/`pos` and calls end().
   */
  begin(maxBytes: number): boolean {
    if (this.#out.writableLength > this.#maxPending) {
      this.dropped++;
      return false;
    }
    if (this.pos + maxBytes > this.buf.length) {
      this.flush();
      if (maxBytes > this.buf.length) this.buf = Buffer.allocUnsafe(maxBytes);
    }
    return true;
  }

  end(): void {
    if (this.pos >= this.#flushBytes) this.flush();
  }

  flush(): void {
    if (this.pos === 0) return;
    const chunk = this.buf.subarray(0, this.pos);
    this.pos = 0;
    this.#out.write(chunk);
    if (this.#out.writableLength > 0) this.buf = Buffer.allocUnsafe(Math.max(this.#flushBytes + 4096, this.buf.length));
  }
}

/** JSON lines into a LineBatch (pino's layout, one object per line). */
export class JsonLineAccessLog implements AccessLog {
  readonly #batch: LineBatch;
  readonly #prefix: Buffer;
  /** The start of a line up to req_id's value, for the millisecond in #startMs (lines of one millisecond share it). */
  readonly #start: Buffer;
  /** The used part of #start. */
  #startView: Buffer = Buffer.alloc(0);
  #startMs = -1;
  #method = '';
  #methodBytes: Buffer = encodeBetween(K_METHOD, '', K_PATH);
  #app = '';
  #cluster = '';
  #targetBytes: Buffer = encodeBetween(K_APP, '', K_CLUSTER, '', K_STATUS);

  constructor(batch: LineBatch, name = 'serve-gateway') {
    this.#batch = batch;
    this.#prefix = Buffer.from(`,"pid":${process.pid},"name":${JSON.stringify(name)},"kind":"access","req_id":`);
    this.#start = Buffer.alloc(LEVEL_TIME.length + 24 + this.#prefix.length);
  }

  #lineStart(ms: number): Buffer {
    if (ms !== this.#startMs) {
      const s = this.#start;
      this.#startView = s.subarray(0, copyIn(s, writeUint(s, copyIn(s, 0, LEVEL_TIME), ms), this.#prefix));
      this.#startMs = ms;
    }
    return this.#startView;
  }

  log(requestId: string, method: string, path: string, app: string, cluster: string, status: number, flag: string, attempts: number, durationMs: number, ttfbMs: number): void {
    const batch = this.#batch;
    // Each string takes at most 6 bytes per UTF-16 unit once escaped (\uXXXX), plus its quotes.
    const max = FIXED_BYTES + this.#prefix.length + 6 * (requestId.length + method.length + path.length + app.length + cluster.length + flag.length);
    if (!batch.begin(max)) return;
    const b = batch.buf;
    const start = this.#lineStart(Date.now());
    b.set(start, batch.pos);
    let p = batch.pos + start.length;
    p = writeJsonString(b, p, requestId);
    // The method with its keys, and the app and cluster with theirs, are encoded again only when
    // they change (the same string objects come from the parser's table and the snapshot).
    if (method !== this.#method) this.#methodBytes = encodeBetween(K_METHOD, method, K_PATH);
    this.#method = method;
    b.set(this.#methodBytes, p);
    p += this.#methodBytes.length;
    p = writeJsonString(b, p, path);
    if (app !== this.#app || cluster !== this.#cluster) this.#targetBytes = encodeBetween(K_APP, app, K_CLUSTER, cluster, K_STATUS);
    this.#app = app;
    this.#cluster = cluster;
    b.set(this.#targetBytes, p);
    p += this.#targetBytes.length;
    p = writeUint(b, p, status);
    p = copyIn(b, p, K_FLAG);
    p = writeJsonString(b, p, flag);
    p = copyIn(b, p, K_ATTEMPTS);
    p = writeUint(b, p, attempts);
    p = copyIn(b, p, K_DURATION);
    p = writeHundredths(b, p, durationMs);
    p = copyIn(b, p, K_TTFB);
    p = ttfbMs < 0 ? copyIn(b, p, NULL) : writeHundredths(b, p, ttfbMs);
    p = copyIn(b, p, LINE_END);
    batch.pos = p;
    batch.end();
  }
}

const LEVEL_TIME = Buffer.from('{"level":30,"time":');
const K_METHOD = Buffer.from(',"method":');
const K_PATH = Buffer.from(',"path":');
const K_APP = Buffer.from(',"app":');
const K_CLUSTER = Buffer.from(',"cluster":');
const K_STATUS = Buffer.from(',"status":');
const K_FLAG = Buffer.from(',"flag":');
const K_ATTEMPTS = Buffer.from(',"attempts":');
const K_DURATION = Buffer.from(',"duration_ms":');
const K_TTFB = Buffer.from(',"ttfb_ms":');
const NULL = Buffer.from('null');
const LINE_END = Buffer.from('}\n');
/** The keys (117 bytes), two quotes per string and five numbers of ≤ 24 characters each, with room to spare. */
const FIXED_BYTES = 320;

/** key "a" key ("b" key): the part of a line between two variable fields, for the values given. */
function encodeBetween(k1: Buffer, a: string, k2: Buffer, b?: string, k3?: Buffer): Buffer {
  const out = Buffer.alloc(k1.length + k2.length + (k3?.length ?? 0) + 6 * (a.length + (b?.length ?? 0)) + 4);
  let p = writeJsonString(out, copyIn(out, 0, k1), a);
  p = copyIn(out, p, k2);
  if (b !== undefined && k3 !== undefined) p = copyIn(out, writeJsonString(out, p, b), k3);
  return out.subarray(0, p);
}

/** Constant bytes: a loop, cheaper than TypedArray#set's call for keys of a few bytes. */
function copyIn(b: Buffer, p: number, src: Buffer): number {
  const n = src.length;
  for (let i = 0; i < n; i++) b[p + i] = src[i]!;
  return p + n;
}

/** Longer strings are copied by Buffer#write (one native call) after the safety check. */
const LOOP_MAX = 64;
/** Printable ASCII other than `"` and `\\`: such a string is its own JSON body. */
const JSON_SAFE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * A JSON string: printable ASCII other than `"` and `\\` is copied as is; anything else (quotes,
 * controls, non-ASCII, lone surrogates) goes through JSON.stringify and UTF-8. The request id,
 * method, app, cluster and flag are short: one pass checks and copies them.
 */
function writeJsonString(b: Buffer, p: number, s: string): number {
  const n = s.length;
  if (n <= LOOP_MAX) {
    b[p] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return p + b.write(JSON.stringify(s), p, 'utf8');
      b[p + 1 + i] = c;
    }
    b[p + 1 + n] = 0x22;
    return p + n + 2;
  }
  if (!JSON_SAFE.test(s)) return p + b.write(JSON.stringify(s), p, 'utf8');
  b[p] = 0x22;
  p += 1 + b.write(s, p + 1, 'latin1');
  b[p] = 0x22;
  return p + 1;
}

/** A non-negative safe integer in decimal (anything else as String(n) would print it). */
export function writeUint(b: Buffer, p: number, n: number): number {
  if (n >= 0 && n < 1e9 && (n | 0) === n) {
    // One digit (attempts, most durations' whole milliseconds) and three (statuses): no loops.
    if (n < 10) {
      b[p] = 0x30 + n;
      return p + 1;
    }
    if (n >= 100 && n < 1000) {
      const h = (n / 100) | 0;
      const t = ((n - h * 100) / 10) | 0;
      b[p] = 0x30 + h;
      b[p + 1] = 0x30 + t;
      b[p + 2] = 0x30 + (n - h * 100 - t * 10);
      return p + 3;
    }
    return writeSmall(b, p, n, 0);
  }
  if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && Math.floor(n) === n)) return p + b.write(String(n), p, 'latin1');
  // Two int32 halves: the digits above 1e9, then the lower nine with leading zeros.
  const hi = Math.floor(n / 1e9);
  return writeSmall(b, writeUint(b, p, hi), n - hi * 1e9, 9);
}

/** 0 ≤ n < 1e9 in decimal, padded with zeros to `width` digits; int32 arithmetic only. */
function writeSmall(b: Buffer, p: number, n: number, width: number): number {
  let digits = 1;
  for (let t = n; t >= 10; t = (t / 10) | 0) digits++;
  if (digits < width) digits = width;
  let q = p + digits;
  let t = n;
  while (q > p) {
    const next = (t / 10) | 0;
    b[--q] = 0x30 + t - next * 10;
    t = next;
  }
  return p + digits;
}

/** round2(ms) as JSON text, from integers (ms ≥ 0): the same text String(round2(ms)) prints. */
export function writeHundredths(b: Buffer, p: number, ms: number): number {
  const c = Math.round(ms * 100);
  if (!(c >= 0 && c < 1e15)) return p + b.write(String(round2(ms)), p, 'latin1');
  const whole = Math.floor(c / 100);
  const frac = c - whole * 100;
  p = writeUint(b, p, whole);
  if (frac === 0) return p;
  b[p++] = 0x2e;
  if (frac % 10 === 0) {
    b[p++] = 0x30 + frac / 10;
    return p;
  }
  b[p++] = 0x30 + Math.floor(frac / 10);
  b[p++] = 0x30 + (frac % 10);
  return p;
}

/**
 * The production access log: JSON lines on stdout in 64 KiB batches, flushed at least every
 * second (call stop() at exit or at the end of a drain to write the rest). The main thread's
 * `serve-gateway start` and each data-plane worker use one each.
 */
export function stdoutAccessLog(): { accessLog: AccessLog; stop(): void } {
  const batch = new LineBatch(process.stdout);
  const timer = setInterval(() => batch.flush(), 1000);
  timer.unref();
  return {
    accessLog: new JsonLineAccessLog(batch),
    stop() {
      clearInterval(timer);
      batch.flush();
    },
  };
}

/** Access lines through a structured logger (tests, embedding). */
export class LoggerAccessLog implements AccessLog {
  readonly #logger: { info(obj: object, msg?: string): void };

  constructor(logger: { info(obj: object, msg?: string): void }) {
    this.#logger = logger;
  }

  log(requestId: string, method: string, path: string, app: string, cluster: string, status: number, flag: string, attempts: number, durationMs: number, ttfbMs: number): void {
    this.#logger.info({
      req_id: requestId,
      method,
      path,
      app,
      cluster,
      status,
      flag,
      attempts,
      duration_ms: round2(durationMs),
      ttfb_ms: ttfbMs < 0 ? null : round2(ttfbMs),
    });
  }
}

function round2(ms: number): number {
  return Math.round(ms * 100) / 100;
}

// One access-log line per finished request (sampled for successes, always for
// local replies and 5xx). The production path builds the JSON line by hand
// (the entry has a fixed shape) and batches lines into large writes: a pino
// line through sonic-boom measured 2.1–2.8 µs, this path about 0.3 µs
// (bench/features.ts), which is the difference between logging every request
// and having to sample. Lines keep pino's layout (level 30, time in ms, name),
// so the same tools read both logs.

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

export interface LineSink {
  write(line: string): unknown;
}

export interface WritableLike {
  write(chunk: string): unknown;
  readonly writableLength: number;
}

/**
 * Collects lines and writes them in batches of `flushBytes` (and whenever
 * flush() is called — the caller runs it on a timer and at exit). When the
 * output cannot keep up (more than `maxPendingBytes` queued in it), lines are
 * dropped and counted rather than held without bound.
 */
export class BufferedLineSink implements LineSink {
  #parts: string[] = [];
  #chars = 0;
  dropped = 0;
  readonly #out: WritableLike;
  readonly #flushChars: number;
  readonly #maxPending: number;

  constructor(out: WritableLike, flushBytes = 64 * 1024, maxPendingBytes = 8 * 1024 * 1024) {
    this.#out = out;
    this.#flushChars = flushBytes;
    this.#maxPending = maxPendingBytes;
  }

  write(line: string): void {
    if (this.#out.writableLength > this.#maxPending) {
      this.dropped++;
      return;
    }
    this.#parts.push(line);
    this.#chars += line.length;
    if (this.#chars >= this.#flushChars) this.flush();
  }

  flush(): void {
    if (this.#parts.length === 0) return;
    const text = this.#parts.join('');
    this.#parts = [];
    this.#chars = 0;
    this.#out.write(text);
  }
}

/** JSON lines to a (buffered) sink, e.g. pino.destination({ sync: false, minLength }). */
export class JsonLineAccessLog implements AccessLog {
  readonly #sink: LineSink;
  readonly #prefix: string;

  constructor(sink: LineSink, name = 'serve-gateway') {
    this.#sink = sink;
    this.#prefix = `,"pid":${process.pid},"name":${JSON.stringify(name)},"kind":"access","req_id":`;
  }

  log(requestId: string, method: string, path: string, app: string, cluster: string, status: number, flag: string, attempts: number, durationMs: number, ttfbMs: number): void {
    // app, cluster and flag are config-validated names; client-controlled strings are escaped
    // (JSON.stringify only when they hold something to escape). Durations are formatted from
    // integer hundredths: the same text as round2(ms) would print, without double-to-string.
    this.#sink.write(
      '{"level":30,"time":' + Date.now() + this.#prefix + jsonString(requestId) + ',"method":' + jsonString(method) + ',"path":' + jsonString(path) +
        ',"app":"' + app + '","cluster":"' + cluster + '","status":' + status + ',"flag":"' + flag + '","attempts":' + attempts +
        ',"duration_ms":' + hundredths(durationMs) + ',"ttfb_ms":' + (ttfbMs < 0 ? 'null' : hundredths(ttfbMs)) + '}\n',
    );
  }
}

/** Printable ASCII other than `"` and `\`: such a string is its own JSON body. */
const JSON_SAFE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function jsonString(s: string): string {
  return JSON_SAFE.test(s) ? '"' + s + '"' : JSON.stringify(s);
}

/** round2(ms) as JSON text, from integers (ms ≥ 0). */
export function hundredths(ms: number): string {
  const c = Math.round(ms * 100);
  if (!(c < 1e15)) return String(round2(ms));
  const whole = Math.floor(c / 100);
  const frac = c - whole * 100;
  if (frac === 0) return '' + whole;
  if (frac % 10 === 0) return whole + '.' + frac / 10;
  return whole + (frac < 10 ? '.0' : '.') + frac;
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

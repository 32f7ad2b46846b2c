// A raw HTTP/1.1 client over one TCP connection: it writes exactly the bytes
// it is given (malformed ones included), in the steps given, and parses what
// comes back at the byte level: interim 1xx responses, final responses framed
// by content-length, chunked or the close, and after a 101 the tunnel bytes.
// Waits are on conditions (bytes parsed, the socket closed) with a deadline;
// nothing sleeps.
import { connect, createServer, type Socket } from 'node:net';

export interface RawResponse {
  readonly version: string;
  readonly status: number;
  readonly reason: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  /** Status line and headers as received (latin1). */
  readonly head: string;
}

export type ClientStep =
  /** Write these bytes (a string is sent as latin1, so every byte value can be written). */
  | { readonly send: string | Buffer }
  /** Wait until this many final responses (>= 200, or 101) arrived in all. */
  | { readonly awaitResponses: number }
  /** Wait until this many interim responses (1xx other than 101) arrived in all, or a final one. */
  | { readonly awaitInterim: number }
  /** Wait until a condition outside the connection holds (e.g. the upstream got a request); polled. */
  | { readonly awaitCondition: () => boolean }
  /** Half-close: FIN after the bytes written so far. */
  | { readonly halfClose: true };

export interface ExchangeOptions {
  readonly port: number;
  readonly host?: string;
  /** Source address (e.g. 127.0.0.2, so the client's address differs from any spoofed one). */
  readonly localAddress?: string;
  readonly steps: readonly ClientStep[];
  /** Final responses after which the exchange is complete (0: wait for the server to close). */
  readonly expectResponses: number;
  /** Whether the i-th final response answers a HEAD request (no body). */
  readonly isHead?: (i: number) => boolean;
  /** Deadline of the whole exchange; reaching it is reported as `deadline`. */
  readonly deadlineMs?: number;
  /** Runs once the expected responses arrived, before the client closes (to catch stragglers). */
  readonly linger?: () => Promise<void>;
}

export interface ExchangeResult {
  readonly responses: RawResponse[];
  readonly interim: RawResponse[];
  /** How the exchange ended. */
  end: 'complete' | 'server-closed' | 'deadline';
  /** Socket error seen (ECONNRESET, EPIPE, ...), if any. */
  error: string | null;
  /** Bytes that did not parse as a response (null when everything parsed). */
  unparsed: Buffer | null;
  /** Bytes received after a 101. */
  tunnel: Buffer;
  /** Bytes actually written (for reproducers). */
  readonly sent: Buffer[];
}

/** Writes the steps to a fresh connection and collects the responses. */
export function rawExchange(opts: ExchangeOptions): Promise<ExchangeResult> {
  const result: ExchangeResult = { responses: [], interim: [], end: 'complete', error: null, unparsed: null, tunnel: Buffer.alloc(0), sent: [] };
  const parser = new ResponseParser(result, opts.isHead ?? (() => false));
  return new Promise<ExchangeResult>((resolve) => {
    const socket: Socket = connect({ host: opts.host ?? '127.0.0.1', port: opts.port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    socket.setNoDelay(true);
    let closed = false;
    let finished = false;
    let wake: (() => void) | null = null;
    const poke = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    const deadline = setTimeout(() => {
      if (finished) return;
      result.end = 'deadline';
      finish();
    }, opts.deadlineMs ?? 10_000);
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      poke();
      parser.atClose(closed);
      socket.destroy();
      resolve(result);
    };
    socket.on('data', (c: Buffer) => {
      parser.push(c);
      poke();
    });
    socket.on('error', (err: Error & { code?: string }) => {
      result.error ??= err.code ?? err.message;
    });
    socket.on('close', () => {
      closed = true;
      parser.atClose(true);
      if (!finished) {
        result.end = 'server-closed';
        finish();
      }
    });
    const until = (cond: () => boolean) =>
      new Promise<void>((r) => {
        const check = () => {
          if (finished || closed || cond()) r();
          else wake = check;
        };
        check();
      });
    socket.once('connect', async () => {
      for (const step of opts.steps) {
        if (finished || closed) return;
        if ('send' in step) {
          const bytes = typeof step.send === 'string' ? Buffer.from(step.send, 'latin1') : step.send;
          result.sent.push(bytes);
          await new Promise<void>((r) => socket.write(bytes, () => r()));
        } else if ('awaitResponses' in step) {
          const n = step.awaitResponses;
          await until(() => result.responses.length >= n);
        } else if ('awaitInterim' in step) {
          const n = step.awaitInterim;
          await until(() => result.interim.length >= n || result.responses.length > 0);
        } else if ('awaitCondition' in step) {
          while (!finished && !closed && !step.awaitCondition()) await new Promise((r) => setTimeout(r, 5));
        } else socket.end();
      }
      if (opts.expectResponses > 0) await until(() => result.responses.length >= opts.expectResponses);
      else await until(() => false);
      if (finished || closed) return;
      if (opts.linger) await opts.linger();
      finish();
    });
  });
}

/** Incremental parser of a stream of HTTP/1.1 responses. */
class ResponseParser {
  readonly #r: ExchangeResult;
  readonly #isHead: (i: number) => boolean;
  #buf: Buffer = Buffer.alloc(0);
  #tunnel = false;
  #broken = false;
  #lastWasHead = false;

  constructor(r: ExchangeResult, isHead: (i: number) => boolean) {
    this.#r = r;
    this.#isHead = isHead;
  }

  push(chunk: Buffer): void {
    if (this.#tunnel) {
      this.#r.tunnel = Buffer.concat([this.#r.tunnel, chunk]);
      return;
    }
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#parse(false);
  }

  /** At close: a response framed by the close ends here; leftovers are reported. */
  atClose(closed: boolean): void {
    if (closed) this.#parse(true);
    const last = this.#r.responses.at(-1);
    if (last !== undefined && this.#lastWasHead && this.#buf.length > 0 && this.#buf.length === Number(responseHeader(last, 'content-length'))) {
      // A reply to bytes the server could not parse does not know they were a HEAD: its body came.
      this.#r.responses[this.#r.responses.length - 1] = { ...last, body: this.#buf };
      this.#buf = Buffer.alloc(0);
    }
    if (this.#buf.length > 0 && !this.#tunnel) this.#r.unparsed = this.#buf;
  }

  #parse(atClose: boolean): void {
    while (!this.#broken && !this.#tunnel && this.#buf.length > 0) {
      const end = this.#buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = this.#buf.subarray(0, end).toString('latin1');
      const lines = head.split('\r\n');
      const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]!);
      if (m === null) {
        this.#broken = true;
        return;
      }
      const headers: Array<[string, string]> = [];
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        headers.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]);
      }
      const status = Number(m[2]);
      const get = (n: string) => headers.find(([k]) => k === n)?.[1];
      let pos = end + 4;
      let body: Buffer = Buffer.alloc(0);
      const interim = status >= 100 && status < 200 && status !== 101;
      const toHead = !interim && this.#isHead(this.#r.responses.length);
      if (interim) {
        // no body
      } else if (status === 101 || status === 204 || status === 304 || toHead) {
        // no body
      } else if (/chunked/i.test(get('transfer-encoding') ?? '')) {
        const parts: Buffer[] = [];
        for (;;) {
          const eol = this.#buf.indexOf('\r\n', pos);
          if (eol === -1) return;
          const size = parseInt(this.#buf.subarray(pos, eol).toString('latin1').split(';')[0]!, 16);
          if (!Number.isFinite(size)) {
            this.#broken = true;
            return;
          }
          if (size === 0) {
            const tEnd = this.#buf.indexOf('\r\n\r\n', eol);
            const direct = this.#buf.indexOf('\r\n', eol + 2) === eol + 2;
            if (direct) pos = eol + 4;
            else if (tEnd === -1) return;
            else pos = tEnd + 4;
            break;
          }
          if (this.#buf.length < eol + 2 + size + 2) return;
          parts.push(this.#buf.subarray(eol + 2, eol + 2 + size));
          pos = eol + 2 + size + 2;
        }
        body = Buffer.concat(parts);
      } else if (get('content-length') !== undefined) {
        const len = Number(get('content-length'));
        if (this.#buf.length < pos + len) return;
        body = this.#buf.subarray(pos, pos + len);
        pos += len;
      } else {
        if (!atClose) return;
        body = this.#buf.subarray(pos);
        pos = this.#buf.length;
      }
      const res: RawResponse = { version: m[1]!, status, reason: m[3] ?? '', headers, body, head };
      this.#buf = this.#buf.subarray(pos);
      if (interim) this.#r.interim.push(res);
      else {
        this.#r.responses.push(res);
        this.#lastWasHead = toHead;
      }
      if (status === 101) {
        this.#tunnel = true;
        this.#r.tunnel = Buffer.from(this.#buf);
        this.#buf = Buffer.alloc(0);
      }
    }
  }
}

/** A header of a parsed response (names are lower-cased). */
export function responseHeader(r: RawResponse, name: string): string | undefined {
  return r.headers.find(([k]) => k === name)?.[1];
}

/** Whether this machine can use 127.0.0.2 as a source address (Linux: all of 127/8 is local). */
export async function loopbackAliasWorks(addr = '127.0.0.2'): Promise<boolean> {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port, localAddress: addr });
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
  } finally {
    server.close();
  }
}

/** Formats bytes for a reproducer: printable ASCII kept, the rest escaped, cut at `max`. */
export function showBytes(b: Buffer | string, max = 600): string {
  const buf = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
  let s = '';
  for (const byte of buf.subarray(0, max)) {
    if (byte === 13) s += '\\r';
    else if (byte === 10) s += '\\n';
    else if (byte === 9) s += '\\t';
    else if (byte === 92) s += '\\\\';
    else if (byte >= 32 && byte < 127) s += String.fromCharCode(byte);
    else s += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return buf.length > max ? `${s}…(+${buf.length - max} bytes)` : s;
}

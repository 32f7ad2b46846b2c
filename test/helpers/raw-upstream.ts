// A raw capturing upstream that plays a Ray Serve proxy at the byte level: a
// `node:net` server with its own HTTP/1.1 parser (no node:http in between, so
// whatever reaches it is seen exactly as sent, malformed or not). It records
// every request it receives — method, target, raw header list, body, framing —
// and answers 200 with a small body, keeping the connection alive as uvicorn
// does. `GET /-/healthz` answers `success` (the gateway's prober) and is not
// recorded. An `Upgrade` request is answered with `upgradeStatus`: 101 turns
// the connection into an echo tunnel, anything else (403, 426, 200) is an
// ordinary response after which the connection stays open for more requests.
// `onRequest` can change the answer per request: reset the socket after the
// full request was read, or stream an endless SSE body (with back-pressure).
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface UpstreamRecord {
  /** Order of arrival over the upstream's life (0-based). */
  readonly seq: number;
  /** Which upstream connection it came on (0-based). */
  readonly conn: number;
  /** Requests before this one on the same connection. */
  readonly onConnIndex: number;
  readonly method: string;
  readonly target: string;
  readonly version: string;
  /** Raw header list in arrival order (obs-folded lines joined to the line before). */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly framing: 'none' | 'length' | 'chunked';
  body: Buffer;
  trailers: Array<[string, string]>;
  /** Why the bytes were not a valid request (the upstream answered 400 and closed), or null. */
  malformed: string | null;
  /** The head as received, for reports (latin1, at most 2 KiB). */
  readonly rawHead: string;
  /** Status the upstream answered (0 when it reset or has not answered yet). */
  answered: number;
}

export type UpstreamAction =
  /** Answer (after `delayMs`, as a slow app would; later requests on the connection wait behind it). */
  | { readonly kind: 'reply'; readonly status?: number; readonly body?: string; readonly headers?: Record<string, string>; readonly delayMs?: number }
  /** Close the connection after the whole request was read: 'fin' (destroy) or 'rst' (TCP reset). */
  | { readonly kind: 'reset'; readonly how?: 'fin' | 'rst' }
  | { readonly kind: 'sse'; readonly eventBytes?: number };

interface ConnState {
  readonly id: number;
  readonly socket: Socket;
  buf: Buffer;
  requests: number;
  /** An answer is being produced (SSE stream) or the connection became a tunnel. */
  mode: 'http' | 'tunnel' | 'streaming' | 'closed';
}

const MAX_HEAD = 64 * 1024;

export class RawUpstream {
  readonly records: UpstreamRecord[] = [];
  healthChecks = 0;
  /** Status for requests that carry an Upgrade header (101 opens an echo tunnel). */
  upgradeStatus = 426;
  /** Per-request override of the answer; default: 200 `ok <target>`. */
  onRequest: ((r: UpstreamRecord) => UpstreamAction | undefined) | null = null;
  /** Bytes received on tunnels (after a 101). */
  tunnelBytes = 0;
  readonly server: Server;
  port = 0;
  #conns = new Set<ConnState>();
  #nextConn = 0;

  constructor() {
    this.server = createServer((socket) => this.#accept(socket));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Open connections that are mid-request (partial bytes buffered) or streaming / tunnelling. */
  get busy(): number {
    let n = 0;
    for (const c of this.#conns) if (c.buf.length > 0 || c.mode === 'streaming' || c.mode === 'tunnel') n++;
    return n;
  }

  /** Open connections holding part of a request (bytes received, request not complete yet). */
  get partial(): number {
    let n = 0;
    for (const c of this.#conns) if (c.mode === 'http' && c.buf.length > 0) n++;
    return n;
  }

  get openConnections(): number {
    return this.#conns.size;
  }

  /** All values of a header (case-insensitive) in a record. */
  static values(r: UpstreamRecord, name: string): string[] {
    const lower = name.toLowerCase();
    return r.headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const c of this.#conns) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Ends every open connection (as a restarting Serve proxy would). */
  dropConnections(): void {
    for (const c of this.#conns) c.socket.destroy();
  }

  #accept(socket: Socket): void {
    const c: ConnState = { id: this.#nextConn++, socket, buf: Buffer.alloc(0), requests: 0, mode: 'http' };
    this.#conns.add(c);
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('close', () => {
      c.mode = 'closed';
      this.#conns.delete(c);
    });
    socket.on('data', (chunk: Buffer) => {
      if (c.mode === 'tunnel') {
        this.tunnelBytes += chunk.length;
        socket.write(chunk);
        return;
      }
      c.buf = c.buf.length === 0 ? chunk : Buffer.concat([c.buf, chunk]);
      this.#drive(c);
    });
  }

  /** Parses and answers every complete request in the buffer. */
  #drive(c: ConnState): void {
    while (c.mode === 'http' && c.buf.length > 0) {
      const parsed = parseRequest(c.buf);
      if (parsed === 'incomplete') return;
      const { head, consumed } = parsed;
      c.buf = c.buf.subarray(consumed);
      if (head.method === 'GET' && head.target === '/-/healthz' && head.malformed === null) {
        this.healthChecks++;
        reply(c.socket, 200, 'success', {});
        continue;
      }
      const rec: UpstreamRecord = {
        seq: this.records.length,
        conn: c.id,
        onConnIndex: c.requests++,
        method: head.method,
        target: head.target,
        version: head.version,
        headers: head.headers,
        framing: head.framing,
        body: head.body,
        trailers: head.trailers,
        malformed: head.malformed,
        rawHead: head.rawHead,
        answered: 0,
      };
      this.records.push(rec);
      if (rec.malformed !== null) {
        rec.answered = 400;
        reply(c.socket, 400, `malformed: ${rec.malformed}`, { connection: 'close' });
        c.socket.end();
        c.mode = 'closed';
        c.buf = Buffer.alloc(0);
        return;
      }
      const action = this.onRequest?.(rec);
      if (action?.kind === 'reset') {
        c.mode = 'closed';
        c.buf = Buffer.alloc(0);
        if (action.how === 'rst') c.socket.resetAndDestroy();
        else c.socket.destroy();
        return;
      }
      if (action?.kind === 'sse') {
        rec.answered = 200;
        c.mode = 'streaming';
        streamForever(c, action.eventBytes ?? 16 * 1024);
        return;
      }
      if (RawUpstream.values(rec, 'upgrade').length > 0 && action === undefined) {
        const status = this.upgradeStatus;
        rec.answered = status;
        if (status === 101) {
          c.socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
          c.mode = 'tunnel';
          if (c.buf.length > 0) {
            this.tunnelBytes += c.buf.length;
            c.socket.write(c.buf);
            c.buf = Buffer.alloc(0);
          }
          return;
        }
        reply(c.socket, status, `upgrade refused ${status}`, {}, rec.method === 'HEAD');
        continue;
      }
      const status = action?.status ?? 200;
      rec.answered = status;
      const delayMs = action?.kind === 'reply' ? (action.delayMs ?? 0) : 0;
      if (delayMs > 0) {
        c.mode = 'streaming';
        setTimeout(() => {
          if (c.mode !== 'streaming') return;
          c.mode = 'http';
          reply(c.socket, status, action?.kind === 'reply' ? (action.body ?? `ok ${rec.method} ${rec.target.slice(0, 200)}`) : '', action?.kind === 'reply' ? (action.headers ?? {}) : {}, rec.method === 'HEAD');
          this.#drive(c);
        }, delayMs);
        return;
      }
      reply(c.socket, status, action?.body ?? `ok ${rec.method} ${rec.target.slice(0, 200)}`, action?.headers ?? {}, rec.method === 'HEAD');
      if (RawUpstream.values(rec, 'connection').some((v) => /\bclose\b/i.test(v))) {
        c.socket.end();
        c.mode = 'closed';
        c.buf = Buffer.alloc(0);
        return;
      }
    }
  }
}

export async function startRawUpstream(): Promise<RawUpstream> {
  const up = new RawUpstream();
  await up.listen();
  return up;
}

function reply(socket: Socket, status: number, body: string, headers: Record<string, string>, head = false): void {
  const b = Buffer.from(body);
  let text = `HTTP/1.1 ${status} ${status === 200 ? 'OK' : 'Status'}\r\ncontent-type: text/plain\r\ncontent-length: ${b.length}\r\n`;
  for (const [k, v] of Object.entries(headers)) text += `${k}: ${v}\r\n`;
  socket.write(head ? `${text}\r\n` : Buffer.concat([Buffer.from(`${text}\r\n`, 'latin1'), b]));
}

/** An SSE response that never ends; it writes only while the socket drains. */
function streamForever(c: ConnState, eventBytes: number): void {
  const socket = c.socket;
  socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n');
  const event = Buffer.from(`data: ${'x'.repeat(Math.max(1, eventBytes - 8))}\n\n`);
  const chunk = Buffer.concat([Buffer.from(`${event.length.toString(16)}\r\n`), event, Buffer.from('\r\n')]);
  const pump = () => {
    while (!socket.destroyed && c.mode === 'streaming') {
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

interface ParsedHead {
  method: string;
  target: string;
  version: string;
  headers: Array<[string, string]>;
  framing: 'none' | 'length' | 'chunked';
  body: Buffer;
  trailers: Array<[string, string]>;
  malformed: string | null;
  rawHead: string;
}

/**
 * One request from the front of `buf`: 'incomplete' when more bytes are needed,
 * else the request and how many bytes it used. A malformed request consumes
 * the whole buffer (the connection is closed after it, as uvicorn does).
 */
export function parseRequest(buf: Buffer): 'incomplete' | { head: ParsedHead; consumed: number } {
  const bad = (why: string, rawHead: string) => ({
    head: { method: '', target: '', version: '', headers: [], framing: 'none' as const, body: Buffer.alloc(0), trailers: [], malformed: why, rawHead },
    consumed: buf.length,
  });
  const end = headEnd(buf, 0);
  if (end === null) {
    if (buf.length > MAX_HEAD) return bad('head too large', buf.subarray(0, 2048).toString('latin1'));
    return 'incomplete';
  }
  const rawHead = buf.subarray(0, end.at).toString('latin1');
  const lines = rawHead.split(/\r?\n/);
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) (HTTP\/\d\.\d)$/.exec(lines[0] ?? '');
  if (m === null) return bad(`bad request line ${JSON.stringify(lines[0])}`, rawHead.slice(0, 2048));
  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && headers.length > 0) {
      headers.at(-1)![1] += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) return bad(`bad header line ${JSON.stringify(line)}`, rawHead.slice(0, 2048));
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  const get = (n: string) => headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
  const te = get('transfer-encoding');
  const cl = get('content-length');
  const head: ParsedHead = { method: m[1]!, target: m[2]!, version: m[3]!, headers, framing: 'none', body: Buffer.alloc(0), trailers: [], malformed: null, rawHead: rawHead.slice(0, 2048) };
  let pos = end.next;
  if (te.length > 0) {
    if (cl.length > 0) return bad('both content-length and transfer-encoding', head.rawHead);
    const codings = te.join(',').split(',').map((s) => s.trim().toLowerCase());
    if (codings.at(-1) !== 'chunked') return bad(`transfer-encoding ${te.join(',')} without final chunked`, head.rawHead);
    head.framing = 'chunked';
    const parts: Buffer[] = [];
    for (;;) {
      const eol = buf.indexOf('\r\n', pos);
      if (eol === -1) return buf.length - pos > 4096 ? bad('chunk size line too long', head.rawHead) : 'incomplete';
      const sizeText = buf.subarray(pos, eol).toString('latin1').split(';')[0]!.trim();
      if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) return bad(`bad chunk size ${JSON.stringify(sizeText)}`, head.rawHead);
      const size = parseInt(sizeText, 16);
      pos = eol + 2;
      if (size === 0) {
        // Trailers up to an empty line.
        for (;;) {
          const tl = buf.indexOf('\r\n', pos);
          if (tl === -1) return 'incomplete';
          const line = buf.subarray(pos, tl).toString('latin1');
          pos = tl + 2;
          if (line === '') break;
          const colon = line.indexOf(':');
          if (colon <= 0) return bad(`bad trailer ${JSON.stringify(line)}`, head.rawHead);
          head.trailers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
        }
        break;
      }
      if (buf.length < pos + size + 2) return 'incomplete';
      parts.push(buf.subarray(pos, pos + size));
      if (buf[pos + size] !== 13 || buf[pos + size + 1] !== 10) return bad('chunk data not followed by CRLF', head.rawHead);
      pos += size + 2;
    }
    head.body = Buffer.concat(parts);
  } else if (cl.length > 0) {
    const values = new Set(cl.join(',').split(',').map((s) => s.trim()));
    const [only] = values;
    if (values.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only)) return bad(`bad content-length ${cl.join(',')}`, head.rawHead);
    const len = Number(only);
    head.framing = 'length';
    if (buf.length < pos + len) return 'incomplete';
    head.body = buf.subarray(pos, pos + len);
    pos += len;
  }
  return { head, consumed: pos };
}

function headEnd(buf: Buffer, from: number): { at: number; next: number } | null {
  const crlf = buf.indexOf('\r\n\r\n', from);
  const lf = buf.indexOf('\n\n', from);
  if (crlf === -1 && lf === -1) return null;
  if (lf !== -1 && (crlf === -1 || lf < crlf)) return { at: lf, next: lf + 2 };
  return { at: crlf, next: crlf + 4 };
}

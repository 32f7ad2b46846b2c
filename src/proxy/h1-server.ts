// A lean HTTP/1.1 server for the data plane (server.engine: lean): raw
// `node:net` sockets, requests parsed by llhttp in strict mode (no lenient
// flags): by default llhttp in WebAssembly (server.parser: wasm), each accepted
// handle adopted by a socket that reads into the shared READ_BUFFER (net's
// `onread`); or Node's own binding, the HTTPParser node:http's server uses,
// reading the handle from C++ (server.parser: native). Responses are
// serialized here. It gives the pipeline what it uses of node:http's request
// and response (DownstreamRequest/DownstreamResponse in pipeline.ts) without
// a Readable per request, a Writable per response or an event per phase: the
// body of a request reaches its consumer by direct calls (a Readable is made
// only for a body streamed to Serve), and the response calls its owner
// (`ctx`) on drain and on close.
//
// Rules (docs/security.md "The lean server"):
// - One request at a time per connection. Pipelined requests are parsed as
//   they come and wait, bodies buffered up to PIPELINE_BUFFER_BYTES (then
//   the socket stops being read), and are handed to the pipeline in order
//   once the response before them is complete.
// - Framing of a response: content-length when given; otherwise chunked for
//   HTTP/1.1 and close-delimited for HTTP/1.0; none for HEAD, 1xx, 204, 304.
// - Keep-alive as llhttp decides it from the version and `Connection`; a
//   response with `connection: close`, a server that is closing, or a
//   close-delimited body ends the connection after the response.
// - Timeouts (checked every second, like node:http's
//   connectionsCheckingInterval): headersTimeout from the first byte of a
//   request (or the connection's start) to the end of its headers,
//   requestTimeout from the first byte to the end of its body, both reported
//   through `clientError` (408); keepAliveTimeout closes an idle connection.
// - A parse error is reported through `clientError` with llhttp's code
//   (HPE_HEADER_OVERFLOW for a head over maxHeaderSize); nothing after it is
//   ever parsed.
// - Header names and values written are checked as node:http checks them
//   (a CR or LF in a value throws ERR_INVALID_CHAR and writes nothing).
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { DirectWriter, directWrite, needDrain, writesPending } from '../core/socket-write.ts';
import { maxHeaderSize as nodeMaxHeaderSize, STATUS_CODES } from 'node:http';
import { createServer as createNetServer, Socket, type AddressInfo, type ListenOptions, type Server as NetServer, type SocketConstructorOpts } from 'node:net';
import { Duplex, Readable } from 'node:stream';
import {
  closeParser,
  HTTPParser,
  K_ON_BODY,
  K_ON_EXECUTE,
  K_ON_HEADERS,
  K_ON_HEADERS_COMPLETE,
  K_ON_MESSAGE_BEGIN,
  K_ON_MESSAGE_COMPLETE,
  METHODS,
  READ_BUFFER,
  WasmParser,
  type LlhttpParser,
  type Parser,
  type RawHead,
} from '../core/llhttp.ts';




/** Bytes of request bodies buffered for requests not yet handed to the pipeline (or not read by it) before reading stops. */
const PIPELINE_BUFFER_BYTES = 64 * 1024;
/** Requests parsed ahead of their turn on one connection before reading stops. */
const PIPELINE_DEPTH = 16;
/** How often the timeouts are checked (node:http's default connectionsCheckingInterval is 30 s; the gateway's 1 s). */
const CHECK_INTERVAL_MS = 1000;

/** node:http's checks (lib/_http_common.js): a token for names; no CTL but HTAB in values. */
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const CLOSE_TOKEN = /(?:^|,)[ \t]*close[ \t]*(?:,|$)/i;

/** What a response calls back: the pipeline's RequestContext. */
export interface ResponseOwner {
  /** The connection closed (any time after the request was handed over; the owner decides what it means). */
  onClientClose(): void;
  /** A write that returned false has drained. */
  drained(): void;
}

/** Where a request body goes when it is read whole (the pipeline's buffered body). */
export interface BodySink {
  onBodyChunk(chunk: Buffer): void;
  onBodyEnd(): void;
}

export interface H1Handlers {
  request(req: H1Request, res: H1Response): void;
  upgrade(req: H1Request, socket: Socket, head: Buffer): void;
  connect(req: H1Request, socket: Socket): void;
  /**
   * The request being received could not be parsed (llhttp's code) or timed
   * out (ERR_HTTP_REQUEST_TIMEOUT). `active` is the response on the connection
   * now (its request may be complete: then the bytes after it broke), or null.
   * The handler answers if it can and destroys the socket.
   */
  clientError(code: string, socket: Socket, active: H1Response | null): void;
  /** A connection refused at accept (maxConnections). */
  drop(): void;
}

export class H1Request {
  readonly method: string;
  readonly url: string;
  /** Flat [name, value, ...] as received. */
  readonly rawHeaders: string[];
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly socket: Socket;
  /** The whole request (body included) was received. */
  complete = false;
  readonly #conn: H1Connection;
  #pending: Buffer[] | null = null;
  #pendingBytes = 0;
  #sink: BodySink | null = null;
  #stream: Readable | null = null;
  /** The body stream's buffer is full (its consumer has not read). */
  #streamFull = false;
  /** The response is done: body bytes still arriving are dropped. */
  #discard = false;

  constructor(conn: H1Connection, method: string, url: string, rawHeaders: string[], major: number, minor: number) {
    this.#conn = conn;
    this.method = method;
    this.url = url;
    this.rawHeaders = rawHeaders;
    this.httpVersionMajor = major;
    this.httpVersionMinor = minor;
    this.socket = conn.socket;
  }

  /** The body, delivered by calls: what arrived so far at once, the rest as it comes. */
  readBody(sink: BodySink): void {
    this.#sink = sink;
    const p = this.#pending;
    if (p !== null) {
      this.#pending = null;
      this.#pendingBytes = 0;
      for (let i = 0; i < p.length; i++) sink.onBodyChunk(p[i]!);
    }
    this.#conn.resumeReading();
    if (this.complete) sink.onBodyEnd();
  }

  /** The body as a Readable (streamed to Serve), with back-pressure onto the socket. */
  bodyStream(): Readable {
    if (this.#stream !== null) return this.#stream;
    const conn = this.#conn;
    const s = new Readable({
      read: () => {
        this.#streamFull = false;
        conn.resumeReading();
      },
    });
    this.#stream = s;
    const p = this.#pending;
    if (p !== null) {
      this.#pending = null;
      this.#pendingBytes = 0;
      for (let i = 0; i < p.length; i++) s.push(p[i]!);
    }
    if (this.complete) s.push(null);
    return s;
  }

  /** @internal llhttp's body callback. */
  pushBody(b: Buffer): void {
    if (this.#discard) return;
    const sink = this.#sink;
    if (sink !== null) {
      sink.onBodyChunk(b);
      return;
    }
    const s = this.#stream;
    if (s !== null) {
      if (!s.push(b)) {
        this.#streamFull = true;
        this.#conn.pauseReading();
      }
      return;
    }
    (this.#pending ??= []).push(b);
    this.#pendingBytes += b.length;
    if (this.#pendingBytes > PIPELINE_BUFFER_BYTES) this.#conn.pauseReading();
  }

  /** @internal Reading may go on as far as this request's body is concerned. */
  get roomForBody(): boolean {
    return !this.#streamFull && this.#pendingBytes <= PIPELINE_BUFFER_BYTES;
  }

  /** @internal The message ended. */
  endBody(): void {
    this.complete = true;
    if (this.#discard) return;
    if (this.#sink !== null) this.#sink.onBodyEnd();
    else if (this.#stream !== null) this.#stream.push(null);
  }

  /** @internal The response is done: what is buffered or still comes is dropped. */
  discard(): void {
    this.#discard = true;
    this.#pending = null;
    this.#pendingBytes = 0;
    this.#streamFull = false;
    this.#sink = null;
  }

  /** @internal The connection closed before the body ended. */
  abort(): void {
    const s = this.#stream;
    if (s === null || this.complete || s.destroyed) return;
    // As node:http: the error only where someone listens (a body not yet taken by a client is simply closed).
    if (s.listenerCount('error') > 0) s.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    else s.destroy();
  }
}

export class H1Response {
  /** The pipeline's RequestContext, told about drain and close. */
  ctx: ResponseOwner | null = null;
  readonly req: H1Request;
  /** writeHead was called (as node:http: not necessarily written yet). */
  headersSent = false;
  /** end() was called: nothing more is written. */
  writableFinished = false;
  /** @internal llhttp's keep-alive verdict for this request. */
  keepAlive = true;
  /** @internal Not handed to the pipeline: answered by clientError with this code in its turn (a request the server refuses). */
  refuse: string | null = null;
  readonly #conn: H1Connection;
  /** The serialized head not yet written, or null. */
  #head: string | null = null;
  /** Or, from writeHeadRaw, the head as bytes: [0, #headLen), with room after it for a small body. */
  #headBuf: Buffer | null = null;
  #headLen = 0;
  #chunked = false;
  #noBody = false;
  #waitingDrain = false;
  /** Body bytes still owed under the response's content-length; -1 = not length-delimited. */
  #remaining = -1;

  constructor(conn: H1Connection, req: H1Request) {
    this.#conn = conn;
    this.req = req;
  }

  /** The socket while this is the response on the connection (a pipelined one waiting has none). */
  get socket(): Socket | null {
    return this.#conn.active === this ? this.#conn.socket : null;
  }

  get destroyed(): boolean {
    return this.#conn.socket.destroyed;
  }

  /** Headers as a flat [name, value, ...] list, names lower-case. Throws ERR_INVALID_CHAR / ERR_INVALID_HTTP_TOKEN like node:http. */
  writeHead(status: number, headers: readonly string[]): this {
    return this.#writeHead(status, headers, true);
  }

  /**
   * writeHead for a list whose every name and value came out of llhttp (the upstream
   * response's headers, the request's x-request-id) or is the gateway's own constant
   * or config-checked name: llhttp in strict mode admits exactly the characters
   * writeHead's checks do (tokens for names; HTAB, SP..~ and 0x80..0xFF in values),
   * so the checks are not run twice.
   */
  writeHeadParsed(status: number, headers: readonly string[]): this {
    return this.#writeHead(status, headers, false);
  }

  #writeHead(status: number, headers: readonly string[], check: boolean): this {
    if (this.headersSent) throw Object.assign(new Error('Cannot write headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    const conn = this.#conn;
    const req = this.req;
    let head = STATUS_LINES[status] ?? `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    let length = -1;
    let chunked = false;
    let date = false;
    let close = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      if (check && !TOKEN.test(name)) throw Object.assign(new TypeError(`Header name must be a valid HTTP token ["${name}"]`), { code: 'ERR_INVALID_HTTP_TOKEN' });
      if (check && INVALID_VALUE.test(value)) throw Object.assign(new TypeError(`Invalid character in header content ["${name}"]`), { code: 'ERR_INVALID_CHAR' });
      switch (name.length) {
        case 4:
          if (name.toLowerCase() === 'date') date = true;
          break;
        case 10:
          if (name.toLowerCase() === 'connection') {
            if (CLOSE_TOKEN.test(value)) close = true;
            // The connection's own token is added below.
            continue;
          }
          break;
        case 14:
          if (name.toLowerCase() === 'content-length') {
            length = Number(value);
            if (!Number.isSafeInteger(length) || length < 0) throw Object.assign(new TypeError(`Invalid content-length ["${value}"]`), { code: 'ERR_INVALID_ARG_VALUE' });
          }
          break;
        case 17:
          if (name.toLowerCase() === 'transfer-encoding') {
            // Only chunked framing is produced here (as node:http: the caller's header, the framing done here).
            if (!/\bchunked\s*$/i.test(value)) throw Object.assign(new TypeError('Only chunked transfer-encoding is supported'), { code: 'ERR_INVALID_ARG_VALUE' });
            chunked = true;
          }
          break;
      }
      head += `${name}: ${value}\r\n`;
    }
    const noBody = req.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    if (!noBody && length === -1 && !chunked) {
      if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) {
        chunked = true;
        head += 'transfer-encoding: chunked\r\n';
      } else close = true; // HTTP/1.0: the body ends with the connection.
    }
    if (close || !conn.keepAlive || conn.server.closing) {
      conn.closeAfter = true;
      head += 'connection: close\r\n';
    } else head += conn.server.keepAliveHead;
    if (!date) head += `date: ${utcDate()}\r\n`;
    this.#head = `${head}\r\n`;
    this.#chunked = chunked && !noBody;
    this.#noBody = noBody;
    this.#remaining = noBody || chunked ? -1 : length;
    this.headersSent = true;
    return this;
  }

  /**
   * writeHeadParsed for a head still in the bytes of the upstream read (the lean client's
   * RawHead): the headers whose entry in `keep` is not -1 (the end of the value without its
   * trailing spaces and tabs), names lower-cased, then `extra` ([name, value, ...]), framed as
   * #writeHead frames them; `info` tells the kept content-length's value (or -1) and whether a
   * date is among them. The same bytes writeHeadParsed writes for the same list, made without
   * strings. false = nothing was done (a status with no line of its own): use writeHeadParsed.
   */
  writeHeadRaw(status: number, raw: RawHead, keep: readonly number[], info: RawHeadInfo, extra: readonly string[]): boolean {
    if (this.headersSent) throw Object.assign(new Error('Cannot write headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    const line = STATUS_LINE_BYTES[status];
    if (line === undefined) return false;
    const conn = this.#conn;
    const req = this.req;
    const { data, spans, count } = raw;
    const contentLength = info.contentLength;
    // At most the head's own bytes (a line grows by one byte at most: ": " after a bare colon),
    // the extra lines and the end.
    let size = line.length + count;
    if (count > 0) size += spans[raw.first + 6 * count - 1]! + 2 - spans[raw.first + 1]!;
    for (let i = 0; i < extra.length; i += 2) size += extra[i]!.length + extra[i + 1]!.length + 4;
    const noBody = req.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    let chunked = false;
    let close = false;
    if (!noBody && contentLength === -1) {
      if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) chunked = true;
      else close = true; // HTTP/1.0: the body ends with the connection.
    }
    if (!conn.keepAlive || conn.server.closing) close = true;
    const tail = conn.server.rawTail(chunked, close, !info.hasDate);
    size += tail.length;
    // Room for the body when it is small and of known length: head and body go out as one write.
    const room = !noBody && contentLength > 0 && contentLength <= COALESCE_BYTES ? contentLength : 0;
    const out = Buffer.allocUnsafe(size + room);
    out.set(line, 0);
    let p = line.length;
    for (let i = 0, at = raw.first; i < count; ) {
      const ve = keep[i]!;
      const ns = spans[at + 1]!;
      const ne = spans[at + 2]!;
      if (ve === -1) {
        i++;
        at += 6;
        continue;
      }
      if (spans[at + 4] === ne + 2 && data[ne + 1] === 0x20 && spans[at + 5] === ve) {
        // "name: value\r\n" as sent, and so the kept lines after it: copied as they are, then
        // the names lower-cased in place.
        let end = ve + 2;
        let j = i + 1;
        let bt = at + 6;
        while (j < count && keep[j] !== -1 && spans[bt + 1] === end && spans[bt + 4] === spans[bt + 2]! + 2 && data[spans[bt + 2]! + 1] === 0x20 && spans[bt + 5] === keep[j]) {
          end = keep[j]! + 2;
          j++;
          bt += 6;
        }
        const q = p;
        p = copyBytes(out, p, data, ns, end);
        for (; i < j; i++, at += 6) {
          const d = q - ns;
          const e = spans[at + 2]! + d;
          for (let k = spans[at + 1]! + d; k < e; k++) {
            const b = out[k]!;
            if (b >= 0x41 && b <= 0x5a) out[k] = b | 0x20;
          }
        }
        continue;
      }
      for (let k = ns; k < ne; k++) {
        const b = data[k]!;
        out[p++] = b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
      }
      out[p++] = 0x3a;
      out[p++] = 0x20;
      p = copyBytes(out, p, data, spans[at + 4]!, ve);
      out[p++] = 0x0d;
      out[p++] = 0x0a;
      i++;
      at += 6;
    }
    for (let i = 0; i < extra.length; i += 2) {
      p = putLatin1(out, p, extra[i]!);
      out[p++] = 0x3a;
      out[p++] = 0x20;
      p = putLatin1(out, p, extra[i + 1]!);
      out[p++] = 0x0d;
      out[p++] = 0x0a;
    }
    out.set(tail, p);
    p += tail.length;
    if (close) conn.closeAfter = true;
    this.#headBuf = out;
    this.#headLen = p;
    this.#chunked = chunked;
    this.#noBody = noBody;
    this.#remaining = noBody || chunked ? -1 : contentLength;
    this.headersSent = true;
    return true;
  }

  /** The head from writeHeadRaw, with `pre`, `chunk` and `suffix` after it, in one write when small. */
  #sendAfterRawHead(s: Socket, pre: string, chunk: Buffer | null, suffix: string): boolean {
    const head = this.#headBuf!;
    let p = this.#headLen;
    this.#headBuf = null;
    const n = chunk === null ? 0 : chunk.length;
    const need = p + pre.length + n + suffix.length;
    let out = head;
    if (need > head.length) {
      if (n > COALESCE_BYTES) {
        s.cork();
        s.write(head.subarray(0, p));
        if (pre !== '') s.write(pre, 'latin1');
        let ok = s.write(chunk!);
        if (suffix !== '') ok = s.write(suffix, 'latin1');
        s.uncork();
        return ok;
      }
      out = Buffer.allocUnsafe(need);
      out.set(head.subarray(0, p));
    }
    p = putLatin1(out, p, pre);
    if (chunk !== null) {
      out.set(chunk, p);
      p += n;
    }
    p = putLatin1(out, p, suffix);
    return directWrite(s, this.#conn.writer, p === out.length ? out : out.subarray(0, p));
  }

  /** Writes the head now if it is still pending (a stream's headers before its first chunk). */
  flushHeaders(): void {
    if (this.#headBuf !== null) {
      if (this.writableFinished) return;
      const s = this.#conn.socket;
      if (s.destroyed) return;
      this.#sendAfterRawHead(s, '', null, '');
      return;
    }
    const head = this.#head;
    if (head === null || this.writableFinished) return;
    this.#head = null;
    const s = this.#conn.socket;
    if (!s.destroyed) s.write(head, 'latin1');
  }

  /** `100 Continue` (Expect: 100-continue), before the head. */
  writeContinue(): void {
    const s = this.#conn.socket;
    if (!this.headersSent && !s.destroyed) s.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
  }

  /** A body chunk; false = the socket's buffer is full (the owner's drained() follows). */
  write(chunk: Buffer): boolean {
    const s = this.#conn.socket;
    if (this.writableFinished || s.destroyed) return false;
    if (this.#noBody || chunk.length === 0) {
      this.flushHeaders();
      return true;
    }
    if (this.#remaining !== -1) {
      // More than the content-length announced: the framing would break; the connection is closed instead.
      if (chunk.length > this.#remaining) {
        s.destroy();
        return false;
      }
      this.#remaining -= chunk.length;
    }
    if (this.#headBuf !== null) {
      const ok = this.#sendAfterRawHead(s, this.#chunked ? `${chunk.length.toString(16)}\r\n` : '', chunk, this.#chunked ? '\r\n' : '');
      if (!ok) this.#waitingDrain = true;
      return ok;
    }
    let prefix = this.#head ?? '';
    this.#head = null;
    if (this.#chunked) prefix += `${chunk.length.toString(16)}\r\n`;
    const ok = send(s, this.#conn.writer, prefix, chunk, this.#chunked ? '\r\n' : '');
    if (!ok) this.#waitingDrain = true;
    return ok;
  }

  /** Ends the response (with a last chunk, if given). */
  end(chunk?: Buffer | string): this {
    if (this.writableFinished) return this;
    const conn = this.#conn;
    const s = conn.socket;
    if (!this.headersSent) this.writeHead(200, []);
    if (!s.destroyed) {
      const body = chunk === undefined || this.#noBody ? null : typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (this.#remaining !== -1 && (body === null ? 0 : body.length) !== this.#remaining) {
        // Shorter or longer than announced: the client could not tell where the next response starts.
        this.writableFinished = true;
        s.destroy();
        conn.responseDone(this);
        return this;
      }
      this.#remaining = -1;
      let out = this.#head ?? '';
      this.#head = null;
      if (this.#headBuf !== null) {
        if (body !== null && body.length > 0) this.#sendAfterRawHead(s, this.#chunked ? `${body.length.toString(16)}\r\n` : '', body, this.#chunked ? '\r\n0\r\n\r\n' : '');
        else this.#sendAfterRawHead(s, '', null, this.#chunked ? '0\r\n\r\n' : '');
      } else if (body !== null && body.length > 0) {
        if (this.#chunked) out += `${body.length.toString(16)}\r\n`;
        send(s, this.#conn.writer, out, body, this.#chunked ? '\r\n0\r\n\r\n' : '');
      } else {
        if (this.#chunked) out += '0\r\n\r\n';
        if (out !== '') s.write(out, 'latin1');
      }
    }
    this.writableFinished = true;
    this.#waitingDrain = false;
    conn.responseDone(this);
    return this;
  }

  /** Closes the connection (a stream cut mid-way: the client sees it end early). */
  destroy(): void {
    this.#conn.socket.destroy();
  }

  /** @internal The socket drained. */
  onDrain(): void {
    if (!this.#waitingDrain) return;
    this.#waitingDrain = false;
    this.ctx?.drained();
  }
}

/** One client connection: its parser, the request being received and the responses in turn. */
class H1Connection {
  readonly server: H1Server;
  readonly socket: Socket;
  /** Responses written straight to the handle (core/socket-write.ts). */
  readonly writer = new DirectWriter();
  readonly #parser: Parser;
  #headerAcc: string[] = [];
  #urlAcc = '';
  /** The response being produced (its request handed to the pipeline), or null. */
  active: H1Response | null = null;
  /** The last response handed over: told when the connection closes (also after it ended, for a fault). */
  #current: H1Response | null = null;
  /** Requests parsed ahead of their turn. */
  readonly #waiting: H1Response[] = [];
  /** The request whose head or body is being received, or null. */
  #receiving: H1Request | null = null;
  /** llhttp's keep-alive verdict for the last request head. */
  keepAlive = true;
  /** The active response ends the connection. */
  closeAfter = false;
  /** No more requests are taken on this connection (closing, failed, or upgraded). */
  #done = false;
  #upgrade: H1Request | null = null;
  #upgradeHead: Buffer | null = null;
  #paused = false;
  /** Upgraded or CONNECT: the socket belongs to its handler (wasm: reads are pushed to its readable side). */
  #handedOff = false;
  /** The parser reads the socket's handle itself (parser.consume). */
  #consumed = false;
  /** The client sent FIN. */
  #ended = false;
  // Timeout stamps (performance.now()); 0 = not running.
  headStart: number;
  requestStart = 0;
  idleSince = 0;

  readonly #closeListener = (): void => this.#onClose();

  constructor(server: H1Server, socket: Socket) {
    this.server = server;
    this.socket = socket;
    this.headStart = performance.now();
    const wasm = server.parser === 'wasm';
    let p: Parser;
    if (wasm) {
      const w = new WasmParser();
      // The reads land in the shared READ_BUFFER: a body chunk kept past the read is a copy.
      w.copyBodies = true;
      p = w;
    } else p = new HTTPParser();
    p.initialize(HTTPParser.REQUEST, {}, server.maxHeaderSize, 0);
    p[K_ON_MESSAGE_BEGIN] = () => {
      // Nothing after #done is a request (in consume mode llhttp still parses what arrives).
      if (this.#done) return;
      const now = performance.now();
      this.headStart = now;
      this.requestStart = now;
      this.idleSince = 0;
    };
    p[K_ON_HEADERS] = (headers: string[], url: string) => {
      const acc = this.#headerAcc;
      for (let i = 0; i < headers.length; i++) acc.push(headers[i]!);
      this.#urlAcc += url;
    };
    p[K_ON_HEADERS_COMPLETE] = (major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean): number =>
      this.#onHead(major, minor, headers, method, url, upgrade, keepAlive);
    p[K_ON_BODY] = (b: Buffer) => {
      const r = this.#receiving;
      if (r !== null) r.pushBody(b);
    };
    p[K_ON_MESSAGE_COMPLETE] = () => {
      const r = this.#receiving;
      this.requestStart = 0;
      if (r === null) return;
      this.#receiving = null;
      r.endBody();
    };
    this.#parser = p;
    // Reads go straight from the socket's handle into the parser (kOnExecute after each); the
    // connection falls back to 'data' events for good the first time it has to stop reading.
    const handle = (socket as Socket & { _handle?: { isStreamBase?: boolean } })._handle;
    if (!wasm && handle?.isStreamBase === true) {
      (p as LlhttpParser).consume(handle);
      this.#consumed = true;
      p[K_ON_EXECUTE] = (r: number | (Error & { code?: string })) => this.#afterExecute(r, null);
    }
    // (wasm: the socket's reads come through onRead, H1Server's onread callback.)
    if (!wasm) socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('end', () => this.#onEnd());
    socket.on('error', noop);
    socket.on('close', this.#closeListener);
    socket.on('drain', () => {
      if (this.active !== null) this.active.onDrain();
      else if (this.#waiting.length > 0 || this.#upgrade !== null) this.next();
      this.resumeReading();
    });
  }

  #onHead(major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, upgrade: boolean, keepAlive: boolean): number {
    // Nothing more is taken on a connection that is closing (the rest of this read is not parsed).
    if (this.#done || this.socket.destroyed) {
      this.headStart = 0;
      this.requestStart = 0;
      return -1;
    }
    if (headers === undefined) {
      headers = this.#headerAcc;
      this.#headerAcc = [];
    }
    if (url === undefined || url === '') {
      url = this.#urlAcc;
      this.#urlAcc = '';
    }
    this.headStart = 0;
    const req = new H1Request(this, METHODS[method] ?? 'GET', url, headers, major, minor);
    if (upgrade) {
      // Upgrade or CONNECT: nothing after this head is parsed as HTTP (llhttp stops, execute returns).
      this.requestStart = 0;
      this.#upgrade = req;
      this.#done = true;
      return 2;
    }
    const res = new H1Response(this, req);
    res.keepAlive = keepAlive;
    if (major === 1 && minor >= 1 && !hasHost(headers)) {
      // RFC 9112 §3.2 (node:http's requireHostHeader): a 400 in its turn, then the connection closes.
      res.refuse = 'ERR_MISSING_HOST';
      this.#done = true;
      this.#waiting.push(res);
      return -1;
    }
    this.#receiving = req;
    if (this.active === null && this.#waiting.length === 0 && !needDrain(this.socket, this.writer)) this.#handOver(res);
    else {
      // Pipelined: waits for the responses before it.
      this.#waiting.push(res);
      if (this.#waiting.length >= PIPELINE_DEPTH) this.pauseReading();
    }
    // A client that does not read its responses is not read either (as node:http).
    if (needDrain(this.socket, this.writer)) this.pauseReading();
    return 0;
  }

  #handOver(res: H1Response): void {
    if (res.refuse !== null) {
      this.fail(res.refuse);
      return;
    }
    this.active = res;
    this.#current = res;
    this.keepAlive = res.keepAlive;
    this.closeAfter = false;
    this.idleSince = 0;
    this.server.handlers.request(res.req, res);
  }

  #onData(d: Buffer): void {
    if (this.#done) return;
    this.#afterExecute(this.#parser.execute(d), d);
  }

  /**
   * A read into READ_BUFFER (wasm). Parsed at once; once the connection is upgraded its bytes
   * go to the socket's readable side as copies, so its new owner reads it as any socket.
   */
  onRead(n: number, buf: Buffer): boolean {
    if (this.#handedOff) return this.socket.push(Buffer.from(buf.subarray(0, n)));
    if (this.#done) return true;
    const d = buf.subarray(0, n);
    this.#afterExecute(this.#parser.execute(d), d);
    return true;
  }

  /** After a parser run over `d` (null: the consumed read, from getCurrentBuffer). */
  #afterExecute(r: number | (Error & { code?: string }), d: Buffer | null): void {
    if (this.#upgrade !== null && this.#upgradeHead === null && typeof r === 'number') {
      // llhttp stopped at the end of the upgrade's head: the rest is the tunnel's.
      const buf = d ?? (this.#parser as LlhttpParser).getCurrentBuffer();
      // A copy: a read buffer may be reused (wasm reads into READ_BUFFER).
      this.#upgradeHead = r < buf.length ? Buffer.from(buf.subarray(r)) : Buffer.alloc(0);
      this.pauseReading();
      if (this.active === null && this.#waiting.length === 0) this.#startUpgrade();
      return;
    }
    if (this.#done) {
      // Closing, or a refused request waits for its turn: nothing after it counts.
      if (this.active === null && this.#waiting.length > 0) this.next();
      return;
    }
    if (typeof r !== 'number') {
      // Data after a `Connection: close` request: not ours to read.
      if (r.code === 'HPE_CLOSED_CONNECTION') {
        this.#done = true;
        return;
      }
      this.fail(r.code ?? 'HPE_INTERNAL');
    }
  }

  /** A parse error or a timeout: told to the handler (which answers if it can and destroys the socket). */
  fail(code: string): void {
    if (this.socket.destroyed) return;
    this.#done = true;
    const active = this.active;
    const cur = this.#current;
    // The rest of a request already answered (its body being dropped) broke or timed out: no second answer.
    if (active === null && cur !== null && cur.writableFinished && this.#receiving === cur.req) {
      this.socket.destroy();
      return;
    }
    this.server.handlers.clientError(code, this.socket, active);
    this.socket.destroy();
  }

  #onEnd(): void {
    this.#ended = true;
    // The client will send nothing more: a request cut short is a parse error; the response in progress still goes out.
    if (this.#done || this.socket.destroyed) {
      if (!this.socket.destroyed && this.active === null) this.socket.destroy();
      return;
    }
    const r = this.#parser.finish();
    if (r instanceof Error && this.#receiving !== null) {
      this.fail(r.code ?? 'HPE_INVALID_EOF_STATE');
      return;
    }
    this.#done = true;
    // Requests already received are answered in turn; the last response closes (responseDone).
    if (this.active === null && this.#waiting.length === 0) this.socket.destroy();
  }

  #onClose(): void {
    this.server.conns.delete(this);
    this.#done = true;
    this.#receiving?.abort();
    this.#receiving = null;
    this.#waiting.length = 0;
    this.active = null;
    const cur = this.#current;
    this.#current = null;
    if (cur !== null && cur.ctx !== null) cur.ctx.onClientClose();
    this.#unconsume();
    setImmediate(closeParser, this.#parser);
  }

  /** The active response ended: the next request in turn, an upgrade, idle, or close. */
  responseDone(res: H1Response): void {
    if (this.active !== res) return;
    this.active = null;
    res.req.discard();
    if (this.closeAfter || !this.keepAlive || this.server.closing || (this.#ended && this.#waiting.length === 0)) {
      this.#done = true;
      this.#waiting.length = 0;
      // Closed once what was written is flushed.
      const s = this.socket;
      s.end(() => s.destroy());
      return;
    }
    if (this.#waiting.length > 0 || this.#upgrade !== null) {
      // Not from inside the previous response's end() (the pipeline is still finishing it).
      process.nextTick(nextInTurn, this);
      return;
    }
    this.idleSince = performance.now();
    this.resumeReading();
  }

  /** @internal */
  next(): void {
    if (this.socket.destroyed || this.active !== null) return;
    // Responses not yet taken by the client: the next request waits for 'drain'.
    if (needDrain(this.socket, this.writer)) return;
    const res = this.#waiting.shift();
    if (res !== undefined) {
      this.#handOver(res);
      if (this.#waiting.length < PIPELINE_DEPTH && this.#upgrade === null) this.resumeReading();
      return;
    }
    if (this.#upgrade !== null) this.#startUpgrade();
  }

  #startUpgrade(): void {
    const req = this.#upgrade!;
    const head = this.#upgradeHead ?? Buffer.alloc(0);
    this.#upgrade = null;
    this.#upgradeHead = null;
    // The socket leaves the server: its listeners go, the upgrade handler takes it as node:http hands it over.
    const s = this.socket;
    this.server.conns.delete(this);
    s.removeAllListeners('data');
    s.removeAllListeners('end');
    s.removeListener('close', this.#closeListener);
    s.removeAllListeners('drain');
    s.removeListener('error', noop);
    this.#unconsume();
    setImmediate(closeParser, this.#parser);
    this.#handedOff = true;
    if (this.server.parser === 'wasm') asPlainSocket(s);
    if (req.method === 'CONNECT') this.server.handlers.connect(req, s);
    else this.server.handlers.upgrade(req, s, head);
  }

  pauseReading(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#unconsume();
    this.socket.pause();
  }

  /** Back to JS reads ('data' events, which can be paused). */
  #unconsume(): void {
    if (!this.#consumed) return;
    this.#consumed = false;
    (this.#parser as LlhttpParser).unconsume();
  }

  /** Every resume goes through here: reading stays stopped while any reason to stop holds. */
  resumeReading(): void {
    if (!this.#paused || this.#upgrade !== null || this.#waiting.length >= PIPELINE_DEPTH || needDrain(this.socket, this.writer)) return;
    const r = this.#receiving;
    if (r !== null && !r.roomForBody) return;
    this.#paused = false;
    this.socket.resume();
  }

  /** Idle: no response in progress, none waiting, nothing being received. */
  get idle(): boolean {
    return this.active === null && this.#waiting.length === 0 && this.#receiving === null && this.#upgrade === null;
  }

  /** Called every CHECK_INTERVAL_MS. */
  check(now: number): void {
    const srv = this.server;
    if (this.socket.destroyed || this.#upgrade !== null) return;
    if (this.headStart !== 0 && srv.headersTimeout > 0 && now - this.headStart > srv.headersTimeout) this.fail('ERR_HTTP_REQUEST_TIMEOUT');
    else if (this.requestStart !== 0 && srv.requestTimeout > 0 && now - this.requestStart > srv.requestTimeout) this.fail('ERR_HTTP_REQUEST_TIMEOUT');
    else if (this.idleSince !== 0 && this.idle && srv.keepAliveTimeout > 0 && now - this.idleSince > srv.keepAliveTimeout) {
      // Idle counts from when the last response left for the client, not from end().
      if (writesPending(this.socket, this.writer)) this.idleSince = now;
      else this.socket.destroy();
    }
  }
}

/** Bodies up to this size are copied behind their head into one buffer: one write call, no writev. */
const COALESCE_BYTES = 16 * 1024;

/** Writes prefix + chunk + suffix (prefix and suffix latin1, either may be '') as one write where small. */
function send(s: Socket, w: DirectWriter, prefix: string, chunk: Buffer, suffix: string): boolean {
  if (prefix === '' && suffix === '') return directWrite(s, w, chunk);
  if (chunk.length <= COALESCE_BYTES) {
    const out = Buffer.allocUnsafe(prefix.length + chunk.length + suffix.length);
    let at = out.write(prefix, 0, 'latin1');
    at += chunk.copy(out, at);
    if (suffix !== '') out.write(suffix, at, 'latin1');
    return directWrite(s, w, out);
  }
  s.cork();
  if (prefix !== '') s.write(prefix, 'latin1');
  let ok = s.write(chunk);
  if (suffix !== '') ok = s.write(suffix, 'latin1');
  s.uncork();
  return ok;
}

/** What writeHeadRaw needs to know of the kept headers (filterRawResponseHead finds it). */
export interface RawHeadInfo {
  readonly contentLength: number;
  readonly hasDate: boolean;
}

/** Copies data[start, end) to out at p; the position after it. A loop for a few bytes, memcpy for more. */
function copyBytes(out: Buffer, p: number, data: Buffer, start: number, end: number): number {
  const n = end - start;
  if (n <= 24) {
    for (let k = 0; k < n; k++) out[p + k] = data[start + k]!;
  } else out.set(new Uint8Array(data.buffer, data.byteOffset + start, n), p);
  return p + n;
}

/** Copies a string of latin1 characters (codes ≤ 0xFF) as bytes; the position after it. A loop for a few, Buffer's own latin1 encoder for more. */
function putLatin1(out: Buffer, p: number, s: string): number {
  const n = s.length;
  if (n > 8) return p + (out as Buffer & Latin1Write).latin1Write(s, p);
  for (let i = 0; i < n; i++) out[p + i] = s.charCodeAt(i);
  return p + n;
}

/** Buffer's latin1 encoder (what `write(s, p, 'latin1')` calls, without its argument handling). */
interface Latin1Write {
  latin1Write(s: string, offset: number): number;
}

/** The status lines of the statuses Node names (no number-to-string conversion per response). */
const STATUS_LINES: (string | undefined)[] = [];
for (const code of Object.keys(STATUS_CODES)) STATUS_LINES[Number(code)] = `HTTP/1.1 ${code} ${STATUS_CODES[code]}\r\n`;
const STATUS_LINE_BYTES: (Buffer | undefined)[] = STATUS_LINES.map((l) => (l === undefined ? undefined : Buffer.from(l, 'latin1')));

function hasHost(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i]!;
    if (n.length === 4 && (n === 'Host' || n === 'host' || n.toLowerCase() === 'host')) return true;
  }
  return false;
}

/**
 * An upgraded socket (wasm) handed to its new owner behaves as any socket: pause() and resume()
 * act on its readable side (the `onread` socket's own stop and start reading at once), and it reads
 * on, into its readable buffer, up to the high-water mark (so a FIN is seen while it is paused).
 */
function asPlainSocket(s: Socket): void {
  s.pause = Duplex.prototype.pause as Socket['pause'];
  s.resume = Duplex.prototype.resume as Socket['resume'];
  s.read(0);
}

function nextInTurn(conn: H1Connection): void {
  conn.next();
}

function noop(): void {}

/** The data-plane listener with the subset of node:http.Server the gateway uses. */
export class H1Server {
  readonly handlers: H1Handlers;
  readonly conns = new Set<H1Connection>();
  readonly maxHeaderSize: number;
  /** wasm: sockets read into READ_BUFFER, parsed by WasmParser; native: Node's binding reads the handle. */
  readonly parser: 'wasm' | 'native';
  /** ms; 0 = off (node:http's names, so server.* applies to either engine). */
  headersTimeout = 60_000;
  requestTimeout = 300_000;
  #keepAliveTimeout = 5_000;
  /** The keep-alive tokens of a response, for the current keepAliveTimeout. */
  keepAliveHead = 'connection: keep-alive\r\nkeep-alive: timeout=5\r\n';
  /** rawTail()'s eight ends of a head, for the second in #tailsSecond. */
  readonly #tails: Buffer[] = [];
  #tailsSecond = -1;
  closing = false;
  readonly #net: NetServer;
  #timer: NodeJS.Timeout | null = null;
  // wasm: the accepted socket's handle moves to a socket of ours (with `onread`), so net.Server no
  // longer counts it; these do (upgraded sockets too, until they close).
  #open = 0;
  #maxConnections = Infinity;
  #closed: (() => void) | null = null;
  readonly #socketClosed = (): void => {
    this.#open--;
    if (this.#open === 0 && this.#closed !== null) this.#closed();
  };

  constructor(handlers: H1Handlers, maxHeaderSize = nodeMaxHeaderSize, parser: 'wasm' | 'native' = 'wasm') {
    this.handlers = handlers;
    this.maxHeaderSize = maxHeaderSize;
    this.parser = parser;
    // allowHalfOpen: a client's FIN after its request still gets the response (then the connection closes).
    this.#net = createNetServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: parser === 'wasm' }, (socket) => {
      if (this.closing) {
        socket.destroy();
        return;
      }
      if (parser === 'wasm') this.#adopt(socket);
      else this.conns.add(new H1Connection(this, socket));
    });
    this.#net.on('drop', () => this.handlers.drop());
  }

  /**
   * wasm: the accepted socket (not yet reading) gives its handle to a socket that reads into
   * READ_BUFFER: net's `onread` option, which only a socket created with it has. Reads then reach
   * H1Connection.onRead with no Buffer per read and no 'data' event.
   */
  #adopt(accepted: Socket): void {
    if (this.#open >= this.#maxConnections) {
      this.handlers.drop();
      accepted.destroy();
      return;
    }
    const a = accepted as Socket & { _handle: SocketConstructorOpts['handle'] | null };
    const handle = a._handle;
    a._handle = null;
    accepted.destroy();
    let conn: H1Connection | null = null;
    const opts: SocketConstructorOpts = {
      handle: handle ?? undefined,
      allowHalfOpen: true,
      readable: true,
      writable: true,
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array): boolean => conn === null || conn.onRead(n, buf as Buffer) },
    };
    const socket = new Socket(opts);
    this.#open++;
    socket.once('close', this.#socketClosed);
    conn = new H1Connection(this, socket);
    this.conns.add(conn);
  }

  get keepAliveTimeout(): number {
    return this.#keepAliveTimeout;
  }

  set keepAliveTimeout(ms: number) {
    this.#keepAliveTimeout = ms;
    this.keepAliveHead = ms > 0 ? `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(ms / 1000)}\r\n` : 'connection: keep-alive\r\n';
    this.#tailsSecond = -1;
  }

  /**
   * The end of a head as bytes, as #writeHead ends one: `transfer-encoding: chunked` when
   * chunked, the connection's token (close, or keepAliveHead), a date when asked, the blank line.
   * Made once a second.
   */
  rawTail(chunked: boolean, close: boolean, date: boolean): Buffer {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.#tailsSecond) {
      const d = `date: ${utcDate()}\r\n`;
      for (let i = 0; i < 8; i++) {
        const t = `${i & 1 ? 'transfer-encoding: chunked\r\n' : ''}${i & 2 ? 'connection: close\r\n' : this.keepAliveHead}${i & 4 ? d : ''}\r\n`;
        this.#tails[i] = Buffer.from(t, 'latin1');
      }
      this.#tailsSecond = second;
    }
    return this.#tails[(chunked ? 1 : 0) | (close ? 2 : 0) | (date ? 4 : 0)]!;
  }

  get maxConnections(): number {
    return this.parser === 'wasm' ? this.#maxConnections : this.#net.maxConnections;
  }

  set maxConnections(n: number) {
    if (this.parser === 'wasm') this.#maxConnections = n;
    else this.#net.maxConnections = n;
  }

  listen(opts: ListenOptions, cb: () => void): this {
    this.#net.listen(opts, () => {
      this.#timer ??= setInterval(() => this.sweep(performance.now()), CHECK_INTERVAL_MS).unref();
      cb();
    });
    return this;
  }

  once(event: 'error', listener: (err: Error) => void): this {
    this.#net.once(event, listener);
    return this;
  }

  off(event: 'error', listener: (err: Error) => void): this {
    this.#net.off(event, listener);
    return this;
  }

  address(): AddressInfo | string | null {
    return this.#net.address();
  }

  /** Stops accepting; responses from now on close their connection; cb when every connection is gone. */
  close(cb?: (err?: Error) => void): this {
    this.closing = true;
    if (this.#timer !== null) {
      // Timeouts still apply while connections drain.
      this.#timer.unref();
    }
    this.#net.close((err) => {
      const done = (): void => {
        this.#closed = null;
        if (this.#timer !== null) clearInterval(this.#timer);
        this.#timer = null;
        cb?.(err);
      };
      // wasm: net.Server does not count the sockets it gave away; wait for them here.
      if (this.#open === 0) done();
      else this.#closed = done;
    });
    return this;
  }

  getConnections(cb: (err: Error | null, count: number) => void): void {
    if (this.parser === 'wasm') {
      const n = this.#open;
      process.nextTick(() => cb(null, n));
    } else this.#net.getConnections(cb);
  }

  closeIdleConnections(): void {
    for (const c of this.conns) if (c.idle && !writesPending(c.socket, c.writer)) c.socket.destroy();
  }

  closeAllConnections(): void {
    for (const c of this.conns) c.socket.destroy();
  }

  /** Applies the timeouts as of `now` (performance.now() ms); runs every second, and from tests. */
  sweep(now: number): void {
    for (const c of this.conns) c.check(now);
  }
}

// node:http's date cache: one string per second.
let dateCache = '';
let dateSecond = -1;
function utcDate(): string {
  const s = Math.floor(Date.now() / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateCache = new Date(s * 1000).toUTCString();
  }
  return dateCache;
}

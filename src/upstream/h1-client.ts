// A lean HTTP/1.1 client for one pooled upstream connection (upstream.client:
// lean): one socket at a time, one request at a time (pipelining 1), responses
// parsed by llhttp in strict mode (upstream.parser: wasm, the default: llhttp in
// WebAssembly, the socket read into the shared READ_BUFFER through net's
// `onread`; native: Node's own binding, the parser node:http uses), driven the
// way lib/_http_client.js drives it. A drop-in for how the gateway uses an
// undici Client: dispatch(opts, handler) with undici's legacy handler
// (onConnect/onHeaders/onData/onComplete/onError), destroy() → Promise, and the
// 'connect' / 'disconnect' / 'connectionError' events; errors carry undici's
// codes (UND_ERR_CONNECT_TIMEOUT, UND_ERR_HEADERS_TIMEOUT, UND_ERR_BODY_TIMEOUT,
// UND_ERR_SOCKET, ...) or the socket's own (ECONNREFUSED, ECONNRESET).
//
// Rules (docs/benchmarks.md "What was not done"): 1xx interim responses are
// skipped; HEAD, 204 and 304 have no body; a close-delimited body ends at FIN;
// a socket is reused only after its response was read whole and its request
// written whole, and only when the server keeps it alive (no `Connection:
// close`), before its `Keep-Alive: timeout=N` hint minus 1 s and before
// idleTimeout; any byte or FIN on an idle socket destroys it; bytes after a
// complete response (response splitting) destroy the socket and are never
// parsed as a response to a later request.
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { DirectWriter, directWrite } from '../core/socket-write.ts';
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import {
  closeParser,
  HTTPParser,
  K_ON_BODY,
  K_ON_EXECUTE,
  K_ON_HEADERS,
  K_ON_HEADERS_COMPLETE,
  K_ON_MESSAGE_BEGIN,
  K_ON_MESSAGE_COMPLETE,
  READ_BUFFER,
  WasmParser,
  nameBytes,
  nameIs,
  type LlhttpParser,
  type Parser,
  type RawHead,
} from '../core/llhttp.ts';



const KEEP_ALIVE = nameBytes('keep-alive');

/** undici's legacy dispatch handler, as the gateway's RequestContext implements it. */
export interface H1Handler {
  onConnect?(abort: (err?: Error) => void): void;
  /** rawHeaders: flat [name, value, ...] as received (names not lower-cased). false = pause until resume(). */
  onHeaders?(statusCode: number, rawHeaders: string[], resume: () => void, statusText: string): boolean;
  /**
   * A final response head read whole in one read (the WebAssembly parser), as bytes: instead of
   * onHeaders when the handler has it. `head` is valid only during the call; head.headers() gives
   * the strings onHeaders would have had.
   */
  onRawHeaders?(statusCode: number, head: RawHead, resume: () => void): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: string[] | null): void;
  onError?(err: Error): void;
}

export interface H1DispatchOptions {
  readonly path: string;
  readonly method: string;
  /** Flat [name, value, ...]. */
  readonly headers?: readonly string[] | null;
  readonly body?: Buffer | Readable | string | null;
  /**
   * The method and every header name and value came out of llhttp in strict mode (the client's
   * request) or are the gateway's own: the token check of the method and the per-value character
   * check are not run twice (as H1Response.writeHeadParsed).
   */
  readonly headersChecked?: boolean;
}

export interface H1ClientOptions {
  readonly connectTimeout?: number;
  /** Time to response headers after the request (or its last body byte) was written; 0 = none. */
  readonly headersTimeout?: number;
  /** Max gap between response body chunks; 0 = none. */
  readonly bodyTimeout?: number;
  /** Idle pooled socket lifetime (ms). */
  readonly keepAliveTimeout?: number;
  /** A server's `Keep-Alive: timeout=N` closes the socket this much before N (ms). */
  readonly keepAliveTimeoutThreshold?: number;
  /** Max response header bytes (0 = Node's default, 16 KiB). */
  readonly maxHeaderSize?: number;
  /**
   * The response parser: llhttp compiled to WebAssembly, the socket read into one shared buffer
   * (wasm, the default), or Node's llhttp binding reading the socket's handle (native).
   */
  readonly parser?: 'wasm' | 'native';
}


type CodedError = Error & { code: string };

function codedError(message: string, code: string, name: string): CodedError {
  const e = new Error(message) as CodedError;
  e.name = name;
  e.code = code;
  return e;
}

function ignoreError(): void {}

/** Bytes or a FIN that the socket read but nobody parsed yet (buffered while paused). */
function unreadInput(s: Socket): boolean {
  return s.readableLength > 0 || (s as Socket & { _readableState?: { ended?: boolean } })._readableState?.ended === true;
}


const socketClosed = (): CodedError => codedError('other side closed', 'UND_ERR_SOCKET', 'SocketError');
/** A request target of visible latin1 characters only (no space, control or wider character). */
function pathIsValid(path: string): boolean {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x21 || c > 0xff) return false;
  }
  return true;
}
const INVALID_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const EXPECTS_PAYLOAD = new Set(['POST', 'PUT', 'PATCH']);

// Phases of the request in flight.
const IDLE = 0;
const CONNECTING = 1;
const HEADERS = 2; // request written (or being written), waiting for the final response head
const BODY = 3; // final response head delivered, reading its body

export class H1Client extends EventEmitter {
  /** A slot for the owner (the endpoint's UpstreamConnection), so listeners can be shared functions. */
  conn: unknown = null;
  readonly origin: string;
  readonly #host: string;
  readonly #port: number;
  readonly #hostHeader: string;
  readonly #connectTimeout: number;
  readonly #headersTimeout: number;
  readonly #bodyTimeout: number;
  readonly #keepAliveTimeout: number;
  readonly #keepAliveThreshold: number;
  readonly #maxHeaderSize: number;
  #parser: Parser | null = null;
  readonly #wasm: boolean;
  #socket: Socket | null = null;
  /** Requests written straight to the socket's handle (core/socket-write.ts); one per socket. */
  #writer = new DirectWriter();
  #connected = false;
  #destroyed = false;
  /** Socket error saved for its close (ECONNRESET reads better than "other side closed"). */
  #socketError: Error | null = null;
  /** Reuse deadline of the open socket (performance.now() ms). */
  #reuseUntil = 0;
  /** The last Keep-Alive header value and its hint (ms, threshold applied; -1 none). */
  #kaValue = '';
  #kaHintMs = -1;

  // The request in flight.
  #handler: H1Handler | null = null;
  #opts: H1DispatchOptions | null = null;
  #phase = IDLE;
  #isHead = false;
  #interim = false;
  #keepAlive = false;
  #requestWritten = false;
  #bodyStream: Readable | null = null;
  #streamChunked = false;
  #streamExpected = -1;
  #streamSent = 0;
  #paused = false;
  #queued: Buffer[] | null = null;
  #completePending = false;
  #headerAcc: string[] = [];
  #trailers: string[] | null = null;
  /** A parser callback ran while no response was expected: excess bytes (response splitting). */
  #excess = false;
  /** The parser reads the socket's handle itself (parser.consume). */
  #consumed = false;
  /** The body timeout was armed during the parser run in progress (the head came in this read). */
  #armedThisRead = false;

  // Timeouts: one deadline, checked by a timer that is re-armed lazily.
  #deadline = 0;
  #timer: NodeJS.Timeout | null = null;
  #timerAt = 0;

  readonly #abort: (err?: Error) => void;
  readonly #resume: () => void;
  readonly #onTimer: () => void;

  constructor(origin: string, opts: H1ClientOptions = {}) {
    super();
    const u = new URL(origin);
    if (u.protocol !== 'http:') throw new Error(`H1Client: only http: origins (${origin})`);
    this.origin = u.origin;
    this.#host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    this.#port = u.port === '' ? 80 : Number(u.port);
    this.#hostHeader = u.host;
    this.#connectTimeout = opts.connectTimeout ?? 10_000;
    this.#headersTimeout = opts.headersTimeout ?? 300_000;
    this.#bodyTimeout = opts.bodyTimeout ?? 300_000;
    this.#keepAliveTimeout = opts.keepAliveTimeout ?? 4_000;
    this.#keepAliveThreshold = opts.keepAliveTimeoutThreshold ?? 1_000;
    this.#maxHeaderSize = opts.maxHeaderSize ?? 0;
    this.#wasm = (opts.parser ?? 'wasm') === 'wasm';
    // Bound once per client (never per request).
    this.#abort = (err?: Error) => this.#abortRequest(err);
    this.#resume = () => this.#resumeBody();
    this.#onTimer = () => this.#timerFired();
  }

  /** Is a socket open now (true between 'connect' and 'disconnect')? */
  get connected(): boolean {
    return this.#connected;
  }

  /** Is a request in flight? */
  get busy(): boolean {
    return this.#handler !== null;
  }

  /**
   * Sends one request. Only one may be in flight (the endpoint lends this client to one
   * request at a time); a second one fails with UND_ERR_INFO... as a usage error.
   */
  dispatch(opts: H1DispatchOptions, handler: H1Handler): boolean {
    if (this.#destroyed) {
      queueMicrotask(() => handler.onError?.(codedError('The client is destroyed', 'UND_ERR_DESTROYED', 'ClientDestroyedError')));
      return false;
    }
    if (this.#handler !== null) throw new Error('H1Client: one request at a time (pipelining 1)');
    if (typeof opts.path !== 'string' || opts.path[0] !== '/' || !pathIsValid(opts.path)) {
      queueMicrotask(() => handler.onError?.(codedError('invalid request path', 'UND_ERR_INVALID_ARG', 'InvalidArgumentError')));
      return false;
    }
    // A method llhttp parsed (headersChecked) is one of its constants, all tokens.
    if (opts.headersChecked !== true && !TOKEN.test(opts.method)) {
      queueMicrotask(() => handler.onError?.(codedError('invalid request method', 'UND_ERR_INVALID_ARG', 'InvalidArgumentError')));
      return false;
    }
    this.#handler = handler;
    this.#opts = opts;
    this.#phase = CONNECTING;
    this.#isHead = opts.method === 'HEAD';
    this.#interim = false;
    this.#keepAlive = false;
    this.#requestWritten = false;
    this.#paused = false;
    this.#queued = null;
    this.#completePending = false;
    this.#trailers = null;
    this.#bodyStream = null;
    this.#armedThisRead = false;
    handler.onConnect?.(this.#abort);
    if (this.#handler !== handler) return true; // aborted in onConnect
    const s = this.#socket;
    const now = performance.now();
    if (s !== null && this.#connected && !this.#excess && !s.destroyed && s.readyState === 'open' && !unreadInput(s) && now < this.#reuseUntil) {
      this.#write(s, now);
    } else {
      if (s !== null) this.#dropSocket(s);
      this.#connect();
    }
    return true;
  }

  /** Closes the socket, fails a request in flight (UND_ERR_DESTROYED), refuses new ones. */
  destroy(err?: Error): Promise<void> {
    this.#destroyed = true;
    const s = this.#socket;
    const done =
      s === null || s.destroyed
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            s.once('close', () => resolve());
          });
    this.#fail(err ?? codedError('The client is destroyed', 'UND_ERR_DESTROYED', 'ClientDestroyedError'));
    if (s !== null) this.#dropSocket(s);
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#releaseParser();
    return done;
  }

  close(): Promise<void> {
    return this.destroy();
  }

  // ── connection ──────────────────────────────────────────────────────────
  #connect(): void {
    const base = { host: this.#host, port: this.#port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 };
    // wasm: every read lands in one shared buffer and is parsed at once (no 'data' events, no Buffer per read).
    const s: Socket = this.#wasm
      ? connect({ ...base, onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => this.#onRead(s, n, buf) } })
      : connect(base);
    this.#socket = s;
    this.#writer = new DirectWriter();
    this.#connected = false;
    this.#socketError = null;
    this.#excess = false;
    this.#reuseUntil = 0;
    // One parser per socket: callbacks of a parser whose socket was dropped are ignored.
    const p = (this.#parser = this.#newParser());
    p.initialize(HTTPParser.RESPONSE, {}, this.#maxHeaderSize, 0);
    this.#headerAcc = [];
    this.#arm(this.#connectTimeout);
    s.on('connect', () => {
      if (this.#socket !== s) return;
      this.#connected = true;
      if (!this.#wasm) this.#consume(s, p as LlhttpParser);
      this.emit('connect', this.origin, [this]);
      if (this.#handler !== null && this.#phase === CONNECTING) this.#write(s);
      else this.#deadline = 0;
    });
    s.on('data', (d: Buffer) => {
      if (this.#socket === s) this.#onSocketData(s, d);
    });
    s.on('end', () => {
      if (this.#socket === s) this.#onSocketEnd(s);
    });
    s.on('error', (err: Error) => {
      if (this.#socket !== s) return;
      if (this.#socketError === null) this.#socketError = err;
    });
    s.on('close', () => {
      if (this.#socket === s) this.#onSocketClose();
    });
    s.on('drain', () => {
      const b = this.#bodyStream;
      if (this.#socket === s && b !== null) b.resume();
    });
  }

  /** Forgets the socket now (its later events are ignored) and closes it. */
  #dropSocket(s: Socket): void {
    if (this.#socket === s) {
      this.#socket = null;
      this.#releaseParser();
      const was = this.#connected;
      this.#connected = false;
      if (was) this.emit('disconnect', this.origin, [this], this.#socketError ?? socketClosed());
    }
    s.destroy();
  }

  #releaseParser(): void {
    const p = this.#parser;
    if (p === null) return;
    this.#unconsume();
    this.#parser = null;
    // Never freed from inside its own execute().
    setImmediate(closeParser, p);
  }

  #onSocketClose(): void {
    // ECONNRESET (no FIN) during a close-delimited body: the body ended there (as undici does).
    if (this.#handler !== null && this.#phase === BODY && !this.#keepAlive && !this.#completePending && this.#parser !== null) {
      if (!(this.#parser.finish() instanceof Error) && this.#completePending) this.#socketError = null;
    }
    this.#socket = null;
    this.#releaseParser();
    const was = this.#connected;
    this.#connected = false;
    const err = this.#socketError ?? socketClosed();
    if (was) this.emit('disconnect', this.origin, [this], err);
    else this.emit('connectionError', this.origin, [this], err);
    // A response read whole but not yet delivered (paused by back-pressure) completes on resume().
    if (this.#handler !== null && !this.#completePending) this.#fail(err);
    else if (this.#completePending && !this.#paused) this.#complete();
  }

  #onSocketEnd(s: Socket): void {
    // FIN: the end of a close-delimited body, or a server closing its side.
    if (this.#handler !== null && this.#phase === BODY && !this.#completePending) {
      const r = this.#parser!.finish();
      if (r instanceof Error) {
        // A body cut short (content-length or chunked not complete): the socket closed mid-response.
        this.#dropSocket(s);
        this.#fail(socketClosed());
        return;
      }
      this.#afterParse(s);
      if (this.#handler !== null && !this.#completePending) {
        this.#fail(socketClosed());
        this.#dropSocket(s);
      }
      return;
    }
    if (this.#handler === null || !this.#completePending) {
      if (this.#socketError === null) this.#socketError = socketClosed();
      if (this.#handler !== null) this.#fail(this.#socketError);
      this.#dropSocket(s);
    }
  }

  /**
   * Reads go straight from the socket's handle into the parser (kOnExecute after each), until
   * the first pause: then 'data' events for the rest of the socket's life. Bytes that arrive
   * when no response is due are still parsed first, then dropped with the socket (kOnMessageBegin
   * marks them as excess), exactly as #onSocketData drops them unparsed.
   */
  #consume(s: Socket, p: LlhttpParser): void {
    if (this.#wasm) return;
    const handle = (s as Socket & { _handle?: { isStreamBase?: boolean } })._handle;
    if (handle?.isStreamBase !== true || this.#parser !== p) return;
    p[K_ON_MESSAGE_BEGIN] = () => {
      if (this.#parser === p && (this.#handler === null || this.#phase < HEADERS || this.#completePending)) this.#excess = true;
    };
    p[K_ON_EXECUTE] = (r: number | Error) => {
      if (this.#socket !== s || this.#parser !== p) return;
      if (this.#handler === null || this.#phase < HEADERS) {
        this.#dropSocket(s);
        return;
      }
      this.#afterRun(s, r);
    };
    p.consume(handle);
    this.#consumed = true;
  }

  #unconsume(): void {
    if (!this.#consumed) return;
    this.#consumed = false;
    (this.#parser as LlhttpParser | null)?.unconsume();
  }

  /** A read into READ_BUFFER (wasm): parsed before the callback returns; body chunks are copies. */
  #onRead(s: Socket, n: number, buf: Uint8Array): boolean {
    if (this.#socket === s) this.#onSocketData(s, (buf as Buffer).subarray(0, n));
    return true;
  }

  #onSocketData(s: Socket, d: Buffer): void {
    if (this.#handler === null || this.#phase < HEADERS || this.#completePending) {
      // A byte on an idle socket (or after a complete response): never parsed as a response.
      this.#dropSocket(s);
      return;
    }
    const p = this.#parser!;
    this.#afterRun(s, p.execute(d));
  }

  /** After a parser run (from 'data', or kOnExecute for a consumed handle). */
  #afterRun(s: Socket, r: number | Error): void {
    this.#armedThisRead = false;
    if (this.#socket !== s) {
      // Dropped during the run (aborted or failed from a callback); a late complete is still delivered.
      if (this.#completePending && !this.#paused && this.#handler !== null) this.#complete();
      return;
    }
    if (r instanceof Error) {
      this.#dropSocket(s);
      // Garbage after a response that was read whole: excess bytes, not this response's failure.
      if (this.#completePending) {
        if (!this.#paused) this.#complete();
      } else this.#fail(r);
      return;
    }
    this.#afterParse(s);
  }

  /** After a parser run: excess bytes close the socket; a response read whole completes. */
  #afterParse(s: Socket): void {
    if (this.#excess) this.#dropSocket(s);
    if (this.#completePending && !this.#paused) this.#complete();
  }

  // ── request ─────────────────────────────────────────────────────────────
  /** Writes the request; `now` (performance.now()) starts the headers timeout. */
  #write(s: Socket, now = performance.now()): void {
    const opts = this.#opts!;
    const body = opts.body ?? null;
    let head = `${opts.method} ${opts.path} HTTP/1.1\r\n`;
    let hasHost = false;
    let contentLength = -1;
    const h = opts.headers;
    const check = opts.headersChecked !== true;
    if (h != null) {
      for (let i = 0; i < h.length; i += 2) {
        const name = h[i]!;
        const value = h[i + 1]!;
        const n = name.length;
        if (n === 4 && (name === 'host' || name.toLowerCase() === 'host')) hasHost = true;
        else if (n === 14 && (name === 'content-length' || name.toLowerCase() === 'content-length')) {
          contentLength = Number(value);
          if (!(contentLength >= 0) || !Number.isSafeInteger(contentLength)) return this.#invalid('invalid content-length header');
        } else if (n === 17 && name.toLowerCase() === 'transfer-encoding') return this.#invalid('invalid transfer-encoding header');
        if (check && INVALID_HEADER_VALUE.test(value)) return this.#invalid(`invalid ${name} header`);
        head += `${name}: ${value}\r\n`;
      }
    }
    if (!hasHost) head += `host: ${this.#hostHeader}\r\n`;
    head += 'connection: keep-alive\r\n';
    this.#phase = HEADERS;
    if (body === null) {
      if (contentLength === -1 && EXPECTS_PAYLOAD.has(opts.method)) head += 'content-length: 0\r\n';
      else if (contentLength > 0) return this.#lengthMismatch();
      s.write(`${head}\r\n`, 'latin1');
      this.#requestWritten = true;
      this.#arm(this.#headersTimeout, now);
      return;
    }
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      const buf = typeof body === 'string' ? Buffer.from(body) : body;
      if (contentLength === -1) head += `content-length: ${buf.length}\r\n`;
      else if (contentLength !== buf.length) return this.#lengthMismatch();
      head += '\r\n';
      if (buf.length <= 1024) {
        // One allocation, one write syscall.
        const hl = Buffer.byteLength(head, 'latin1');
        const out = Buffer.allocUnsafe(hl + buf.length);
        out.write(head, 0, hl, 'latin1');
        buf.copy(out, hl);
        directWrite(s, this.#writer, out);
      }
      else {
        s.cork();
        s.write(head, 'latin1');
        s.write(buf);
        s.uncork();
      }
      this.#requestWritten = true;
      this.#arm(this.#headersTimeout, now);
      return;
    }
    // A stream: content-length framing when given (strict), chunked otherwise.
    this.#streamChunked = contentLength === -1;
    this.#streamExpected = contentLength;
    this.#streamSent = 0;
    if (this.#streamChunked) head += 'transfer-encoding: chunked\r\n';
    s.write(`${head}\r\n`, 'latin1');
    this.#arm(this.#headersTimeout);
    this.#bodyStream = body;
    body.on('data', this.#onBodyData);
    body.on('end', this.#onBodyEnd);
    body.on('error', this.#onBodyError);
    body.on('close', this.#onBodyClose);
    if (body.isPaused()) body.resume();
  }

  readonly #onBodyData = (chunk: Buffer | string): void => {
    const s = this.#socket;
    if (s === null || this.#bodyStream === null) return;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (buf.length === 0) return;
    this.#streamSent += buf.length;
    if (this.#streamExpected !== -1 && this.#streamSent > this.#streamExpected) {
      this.#lengthMismatch();
      return;
    }
    let ok: boolean;
    if (this.#streamChunked) {
      s.cork();
      s.write(`${buf.length.toString(16)}\r\n`, 'latin1');
      s.write(buf);
      ok = s.write('\r\n', 'latin1');
      s.uncork();
    } else ok = s.write(buf);
    if (this.#phase === HEADERS) this.#arm(this.#headersTimeout);
    if (!ok) this.#bodyStream.pause();
  };

  readonly #onBodyEnd = (): void => {
    const s = this.#socket;
    if (s === null || this.#bodyStream === null) return;
    if (this.#streamExpected !== -1 && this.#streamSent !== this.#streamExpected) {
      this.#lengthMismatch();
      return;
    }
    this.#detachBody();
    if (this.#streamChunked) s.write('0\r\n\r\n', 'latin1');
    this.#requestWritten = true;
    if (this.#phase === HEADERS) this.#arm(this.#headersTimeout);
    else if (this.#completePending && !this.#paused) this.#complete();
  };

  readonly #onBodyError = (err: Error): void => {
    if (this.#bodyStream === null) return;
    this.#detachBody();
    this.#abortRequest(err);
  };

  readonly #onBodyClose = (): void => {
    // Closed without 'end': the client went away mid-body.
    if (this.#bodyStream === null) return;
    this.#detachBody();
    this.#abortRequest(codedError('Request body stream closed before its end', 'UND_ERR_ABORTED', 'RequestAbortedError'));
  };

  #detachBody(): void {
    const b = this.#bodyStream;
    if (b === null) return;
    this.#bodyStream = null;
    b.off('data', this.#onBodyData);
    b.off('end', this.#onBodyEnd);
    b.off('error', this.#onBodyError);
    b.off('close', this.#onBodyClose);
    // Left before its end (a failed try, an early answer): its later 'error' (the client
    // going away: "aborted") must not be unhandled. It is not destroyed: node:http owns it.
    if (!b.readableEnded) {
      if (b.listenerCount('error') === 0) b.on('error', ignoreError);
      b.resume(); // the rest is read and dropped, so the client connection can carry its next request
    }
  }

  #invalid(message: string): void {
    const s = this.#socket;
    this.#fail(codedError(message, 'UND_ERR_INVALID_ARG', 'InvalidArgumentError'));
    // Nothing was written: the socket stays usable.
    void s;
  }

  #lengthMismatch(): void {
    const s = this.#socket;
    if (s !== null && this.#phase >= HEADERS && this.#bodyStream !== null) this.#dropSocket(s);
    this.#fail(codedError('Request body length does not match content-length header', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'RequestContentLengthMismatchError'));
  }

  // ── response (llhttp callbacks; `this` is the client via arrow functions) ──
  #newParser(): Parser {
    let p: Parser;
    if (this.#wasm) {
      const w = new WasmParser();
      w.copyBodies = true;
      w.rawHeads = true;
      p = w;
    } else p = new HTTPParser();
    p[K_ON_HEADERS] = (headers: string[]) => {
      if (this.#parser !== p) return;
      const acc = this.#headerAcc;
      for (let i = 0; i < headers.length; i++) acc.push(headers[i]!);
    };
    p[K_ON_HEADERS_COMPLETE] = (
      _major: number,
      _minor: number,
      headers: string[] | undefined | null,
      _method: unknown,
      _url: unknown,
      statusCode: number,
      statusMessage: string,
      upgrade: boolean,
      shouldKeepAlive: boolean,
    ): number => (this.#parser === p ? this.#onHeadersComplete(headers, statusCode, statusMessage, upgrade, shouldKeepAlive) : 1);
    p[K_ON_BODY] = (b: Buffer) => {
      if (this.#parser === p) this.#onBody(b);
    };
    p[K_ON_MESSAGE_COMPLETE] = () => {
      if (this.#parser === p) this.#onMessageComplete();
    };
    return p;
  }

  /** headers: null = the head is in (this.#parser as WasmParser).raw (rawHeads). */
  #onHeadersComplete(headers: string[] | undefined | null, statusCode: number, statusMessage: string, upgrade: boolean, shouldKeepAlive: boolean): number {
    if (headers === undefined) {
      headers = this.#headerAcc;
      this.#headerAcc = [];
    }
    const handler = this.#handler;
    if (handler === null || this.#phase !== HEADERS || this.#completePending) {
      this.#excess = true;
      return 1;
    }
    if (statusCode < 200) {
      if (statusCode === 101 || upgrade) {
        this.#excess = true;
        this.#fail(codedError('unexpected upgrade', 'UND_ERR_SOCKET', 'SocketError'));
        return 2;
      }
      // 100 Continue, 103 Early Hints: interim, skipped; the final response follows.
      this.#interim = true;
      return 1;
    }
    if (upgrade) {
      this.#excess = true;
      this.#fail(codedError('unexpected upgrade', 'UND_ERR_SOCKET', 'SocketError'));
      return 2;
    }
    this.#phase = BODY;
    this.#keepAlive = shouldKeepAlive;
    const now = performance.now();
    const raw = headers === null ? (this.#parser as WasmParser).raw : null;
    if (shouldKeepAlive) this.#reuseUntil = raw === null ? this.#keepAliveUntil(headers!, now) : this.#keepAliveUntilRaw(raw, now);
    this.#arm(this.#bodyTimeout, now);
    // Body chunks of this same read need not read the clock again (#afterRun clears it).
    this.#armedThisRead = true;
    let ok: boolean;
    if (raw === null) ok = handler.onHeaders?.(statusCode, headers!, this.#resume, statusMessage) ?? true;
    else if (handler.onRawHeaders !== undefined) ok = handler.onRawHeaders(statusCode, raw, this.#resume);
    else ok = handler.onHeaders?.(statusCode, raw.headers(), this.#resume, raw.statusText()) ?? true;
    if (ok === false && this.#handler === handler) this.#pause();
    return this.#isHead || statusCode === 204 || statusCode === 304 ? 1 : 0;
  }

  /** When the socket must stop being reused: the server's Keep-Alive timeout minus the threshold, else our idle timeout. */
  #keepAliveUntil(headers: string[], now: number): number {
    let ms = this.#keepAliveTimeout;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (name.length !== 10 || (name !== 'Keep-Alive' && name.toLowerCase() !== 'keep-alive')) continue;
      const hint = this.#keepAliveHint(headers[i + 1]!);
      if (hint !== -1 && hint < ms) ms = hint;
    }
    return ms <= 0 ? 0 : now + ms;
  }

  /** #keepAliveUntil on a head still in bytes. */
  #keepAliveUntilRaw(raw: RawHead, now: number): number {
    let ms = this.#keepAliveTimeout;
    const { data, spans } = raw;
    for (let i = 0, at = raw.first; i < raw.count; i++, at += 6) {
      const s = spans[at + 1]!;
      if (spans[at + 2]! - s !== 10 || !nameIs(data, s, KEEP_ALIVE)) continue;
      const vs = spans[at + 4]!;
      const e = raw.valueEnd(at);
      // The same value as last time (a server sends the same one): no string.
      const last = this.#kaValue;
      let same = last.length === e - vs;
      for (let k = 0; same && k < last.length; k++) same = last.charCodeAt(k) === data[vs + k];
      const hint = same ? this.#kaHintMs : this.#keepAliveHint(data.toString('latin1', vs, e));
      if (hint !== -1 && hint < ms) ms = hint;
    }
    return ms <= 0 ? 0 : now + ms;
  }

  /** A Keep-Alive header's timeout minus the threshold, in ms, or -1. A server sends the same value every time: parsed once. */
  #keepAliveHint(value: string): number {
    if (value !== this.#kaValue) {
      this.#kaValue = value;
      const m = /(?:^|[,;\s])timeout\s*=\s*"?(\d+)/i.exec(value);
      this.#kaHintMs = m === null ? -1 : Number(m[1]) * 1000 - this.#keepAliveThreshold;
    }
    return this.#kaHintMs;
  }

  #onBody(b: Buffer): void {
    const handler = this.#handler;
    if (handler === null || this.#phase !== BODY || this.#completePending) {
      if (this.#handler === null || this.#completePending) this.#excess = true;
      return;
    }
    if (this.#paused) {
      (this.#queued ??= []).push(b);
      return;
    }
    if (this.#bodyTimeout > 0 && !this.#armedThisRead) this.#deadline = performance.now() + this.#bodyTimeout;
    if (handler.onData?.(b) === false && this.#handler === handler) this.#pause();
  }

  #onMessageComplete(): void {
    if (this.#interim) {
      this.#interim = false;
      if (this.#phase === HEADERS) this.#arm(this.#headersTimeout);
      return;
    }
    if (this.#handler === null || this.#phase !== BODY || this.#completePending) {
      this.#excess = true;
      return;
    }
    // Delivered after the parser run returns (never from inside it: the handler may dispatch again).
    this.#completePending = true;
    this.#deadline = 0;
  }

  #pause(): void {
    this.#paused = true;
    this.#deadline = 0; // a client slow to read is not a slow upstream (server.write_timeout covers it)
    // A consumed handle cannot be paused: back to 'data' events, which can.
    this.#unconsume();
    this.#socket?.pause();
  }

  #resumeBody(): void {
    if (!this.#paused || this.#handler === null) return;
    this.#paused = false;
    const handler = this.#handler;
    const q = this.#queued;
    if (q !== null) {
      while (q.length > 0) {
        const b = q.shift()!;
        if (handler.onData?.(b) === false && this.#handler === handler) {
          this.#pause();
          return;
        }
        if (this.#handler !== handler) return;
      }
      this.#queued = null;
    }
    if (this.#completePending) {
      this.#complete();
      return;
    }
    if (this.#bodyTimeout > 0) this.#arm(this.#bodyTimeout);
    this.#socket?.resume();
  }

  #complete(): void {
    const handler = this.#handler!;
    const s = this.#socket;
    if (!this.#requestWritten && this.#bodyStream !== null) {
      // Answered before its body was sent whole (an early 413/400): the socket cannot be reused.
      this.#detachBody();
      this.#requestWritten = true;
      if (s !== null) this.#dropSocket(s);
    }
    this.#handler = null;
    this.#opts = null;
    this.#phase = IDLE;
    this.#completePending = false;
    this.#deadline = 0;
    if (s !== null && this.#socket === s) {
      // Bytes (or a FIN) read from the kernel but not parsed while the response was paused came
      // before any later request could be written: excess, never the next response.
      if (!this.#keepAlive || this.#excess || this.#reuseUntil === 0 || unreadInput(s)) this.#dropSocket(s);
      else if (s.isPaused()) s.resume(); // an idle socket must see the server's FIN or stray bytes
    }
    const trailers = this.#trailerList();
    handler.onComplete?.(trailers);
  }

  #trailerList(): string[] | null {
    const acc = this.#headerAcc;
    if (acc.length === 0) return null;
    this.#headerAcc = [];
    return acc;
  }

  #abortRequest(err?: Error): void {
    if (this.#handler === null) return;
    const s = this.#socket;
    if (s !== null && this.#phase !== IDLE) this.#dropSocket(s);
    this.#fail(err ?? codedError('Request aborted', 'UND_ERR_ABORTED', 'RequestAbortedError'));
  }

  /** Ends the request in flight with `err` (at most once). The socket is the caller's business. */
  #fail(err: Error): void {
    const handler = this.#handler;
    if (handler === null) return;
    this.#handler = null;
    this.#opts = null;
    this.#detachBody();
    const midRequest = this.#phase !== IDLE && this.#phase !== CONNECTING;
    this.#phase = IDLE;
    this.#completePending = false;
    this.#queued = null;
    this.#paused = false;
    this.#deadline = 0;
    // A socket with a request half-done cannot carry another one.
    const s = this.#socket;
    if (midRequest && s !== null) this.#dropSocket(s);
    handler.onError?.(err);
  }

  // ── timeouts ────────────────────────────────────────────────────────────
  #arm(ms: number, now = performance.now()): void {
    if (ms <= 0) {
      this.#deadline = 0;
      return;
    }
    const at = now + ms;
    this.#deadline = at;
    if (this.#timer !== null && this.#timerAt <= at) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(this.#onTimer, ms);
    this.#timer.unref();
  }

  #timerFired(): void {
    this.#timer = null;
    const d = this.#deadline;
    if (d === 0 || this.#handler === null) return;
    const now = performance.now();
    if (now + 1 < d) {
      this.#timerAt = d;
      this.#timer = setTimeout(this.#onTimer, d - now);
      this.#timer.unref();
      return;
    }
    const phase = this.#phase;
    const err =
      phase === CONNECTING
        ? codedError('Connect Timeout Error', 'UND_ERR_CONNECT_TIMEOUT', 'ConnectTimeoutError')
        : phase === HEADERS
          ? codedError('Headers Timeout Error', 'UND_ERR_HEADERS_TIMEOUT', 'HeadersTimeoutError')
          : codedError('Body Timeout Error', 'UND_ERR_BODY_TIMEOUT', 'BodyTimeoutError');
    const s = this.#socket;
    if (phase === CONNECTING && s !== null) {
      // Counts as a connection error for the endpoint's listeners.
      this.#socket = null;
      this.#releaseParser();
      this.#connected = false;
      s.destroy();
      this.emit('connectionError', this.origin, [this], err);
      this.#fail(err);
      return;
    }
    if (s !== null) this.#dropSocket(s);
    this.#fail(err);
  }
}

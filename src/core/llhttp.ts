// The two llhttp parsers of the lean engines (proxy/h1-server.ts, upstream/h1-client.ts), both
// strict (no lenient flag is ever set):
// - HTTPParser: Node's own binding, the parser node:http uses (`_http_common`: an undocumented
//   module of the Node version the project pins; a change would fail at start, loudly);
// - WasmParser (below, the default): llhttp compiled to WebAssembly, the build undici ships
//   (`undici/lib/llhttp/*-wasm.js`, of the undici version package.json pins), behind the same
//   interface.
import { Buffer } from 'node:buffer';
import { createRequire } from 'node:module';

export interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  execute(data: Buffer): number | (Error & { code?: string; bytesParsed?: number });
  finish(): undefined | (Error & { code?: string });
  close(): void;
  /** Reads the socket's handle in C++ (no JS 'data' event, no Readable in between), as node:http's server does. */
  consume(handle: unknown): void;
  unconsume(): void;
  /** The read being parsed (a copy), from inside the kOnExecute callback. */
  getCurrentBuffer(): Buffer;
  [k: number]: unknown;
}

/** What the lean engines use of a parser: Node's binding and WasmParser both have it. */
export type Parser = Pick<LlhttpParser, 'initialize' | 'execute' | 'finish' | 'close'> & { [k: number]: unknown };

interface LlhttpParserClass {
  new (): LlhttpParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kOnExecute: number;
}

const require = createRequire(import.meta.url);
const common = require('_http_common') as { HTTPParser: LlhttpParserClass; methods: readonly string[] };
export const HTTPParser: LlhttpParserClass = common.HTTPParser;
/** llhttp's method numbers (kOnHeadersComplete's `method`) to names. */
export const METHODS: readonly string[] = common.methods;
// Callback slots on a parser instance.
export const K_ON_MESSAGE_BEGIN = HTTPParser.kOnMessageBegin | 0;
export const K_ON_HEADERS = HTTPParser.kOnHeaders | 0;
export const K_ON_HEADERS_COMPLETE = HTTPParser.kOnHeadersComplete | 0;
export const K_ON_BODY = HTTPParser.kOnBody | 0;
export const K_ON_MESSAGE_COMPLETE = HTTPParser.kOnMessageComplete | 0;
export const K_ON_EXECUTE = HTTPParser.kOnExecute | 0;

/** Frees a parser (never from inside its own execute(): call it from setImmediate). */
export function closeParser(p: Pick<LlhttpParser, 'close'>): void {
  p.close();
}

// ── llhttp in WebAssembly ────────────────────────────────────────────────────────────────────
// llhttp compiled to WebAssembly (undici's build, strict: no lenient flag is ever set),
// behind the interface of Node's own parser binding (above): the same initialize /
// execute / finish / close, the same callback slots with the same arguments, the same results
// (bytes parsed, or an Error with llhttp's `code` and `bytesParsed`), the same header-size limit
// (HPE_HEADER_OVERFLOW once the request line or status line and the header names and values
// reach maxHeaderSize bytes) and the same trimming of a header value's trailing spaces and tabs.
//
// Why: Node's binding calls JavaScript from C++ once per parser event (an InternalCallbackScope
// each) and copies every body chunk into a Buffer with a backing store of its own. Here the
// events are plain calls out of WebAssembly, a head's strings are cut from one latin1 string of
// the read, and a body chunk is a slice of the read or a copy into the Buffer pool.
//
// Differences, all on purpose: there is no consume()/unconsume() (the caller reads the socket
// and calls execute); kOnHeaders never runs for a head (every header arrives with
// kOnHeadersComplete, however many), only for trailers, before kOnMessageComplete; kOnExecute
// never runs. Chunk extensions are parsed and skipped (this build has no callback for them, so
// nothing of them is kept); Node's limit on them (HPE_CHUNK_EXTENSIONS_OVERFLOW past 16 KiB per
// chunk) is kept as a limit on the framing between two body bytes, checked after each read.

/**
 * Framing bytes allowed between two body bytes of a chunked message (a chunk's size line with its
 * extensions, CRLFs): Node's 16 KiB of extensions per chunk, plus room for the rest of the line.
 */
const MAX_CHUNK_FRAMING = 16 * 1024 + 32;

/** The header-size limit when 0 is given: Node's default (--max-http-header-size is not read here). */
const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;


interface LlhttpExports {
  memory: WebAssembly.Memory;
  malloc(n: number): number;
  free(p: number): void;
  llhttp_alloc(type: number): number;
  llhttp_free(p: number): void;
  llhttp_execute(p: number, data: number, len: number): number;
  llhttp_finish(p: number): number;
  llhttp_get_method(p: number): number;
  llhttp_get_http_major(p: number): number;
  llhttp_get_http_minor(p: number): number;
  llhttp_get_upgrade(p: number): number;
  llhttp_get_error_pos(p: number): number;
  llhttp_get_error_reason(p: number): number;
  llhttp_errno_name(err: number): number;
  llhttp_resume_after_upgrade(p: number): void;
}

// llhttp's llhttp_type_t and llhttp_errno_t.
const TYPE_REQUEST = 1;
const TYPE_RESPONSE = 2;
const E_OK = 0;
const E_PAUSED_UPGRADE = 22;
const E_USER = 24;

// Span kinds (what a span callback was for).
const SPAN_URL = 0;
const STATUS = 1;
const FIELD = 2;
const VALUE = 3;

/**
 * Where sockets read into (net's `onread`), shared by every socket of the thread: a read is parsed
 * before its callback returns, and nothing keeps a view of it (body chunks are copied, see
 * WasmParser.copyBodies).
 */
export const READ_BUFFER: Buffer = Buffer.allocUnsafe(64 * 1024);

/** The parser whose execute() or finish() is running, and the bytes it parses. */
let cur: WasmParser | null = null;
let curData: Buffer = Buffer.alloc(0);
let curPtr = 0;
const EMPTY: Buffer = Buffer.alloc(0);

const wasm = loadWasm();
/** Where a read is copied for llhttp (grown on demand; never freed). */
let inPtr = 0;
let inSize = 0;
let heap = new Uint8Array(wasm.memory.buffer);
const errnoNames = new Map<number, string>();

function loadWasm(): LlhttpExports {
  let mod: WebAssembly.Module;
  try {
    mod = new WebAssembly.Module(require('undici/lib/llhttp/llhttp_simd-wasm.js') as Buffer<ArrayBuffer>);
  } catch {
    mod = new WebAssembly.Module(require('undici/lib/llhttp/llhttp-wasm.js') as Buffer<ArrayBuffer>);
  }
  const env = {
    wasm_on_message_begin: (_p: number): number => cur!.onMessageBegin(),
    wasm_on_url: (_p: number, at: number, len: number): number => cur!.span(SPAN_URL, at, len),
    wasm_on_status: (_p: number, at: number, len: number): number => cur!.span(STATUS, at, len),
    wasm_on_header_field: (_p: number, at: number, len: number): number => cur!.span(FIELD, at, len),
    wasm_on_header_value: (_p: number, at: number, len: number): number => cur!.span(VALUE, at, len),
    wasm_on_headers_complete: (_p: number, status: number, upgrade: number, keepAlive: number): number => cur!.onHeadersComplete(status, upgrade, keepAlive),
    wasm_on_body: (_p: number, at: number, len: number): number => cur!.onBody(at, len),
    wasm_on_message_complete: (_p: number): number => cur!.onMessageComplete(),
  };
  const inst = new WebAssembly.Instance(mod, { env });
  return inst.exports as unknown as LlhttpExports;
}

/** A view of the wasm memory that is current (a malloc that grows the memory detaches the old one). */
function memory(): Uint8Array {
  if (heap.byteLength === 0) heap = new Uint8Array(wasm.memory.buffer);
  return heap;
}

function cString(ptr: number): string {
  if (ptr === 0) return '';
  const m = memory();
  let end = ptr;
  while (end < m.length && m[end] !== 0) end++;
  return Buffer.from(m.buffer, ptr, end - ptr).toString('latin1');
}

function errnoName(err: number): string {
  let n = errnoNames.get(err);
  if (n === undefined) {
    n = cString(wasm.llhttp_errno_name(err));
    errnoNames.set(err, n);
  }
  return n;
}

export interface ParseError extends Error {
  code: string;
  bytesParsed: number;
  reason: string;
}

function parseError(code: string, reason: string, bytesParsed: number): ParseError {
  return Object.assign(new Error('Parse Error: ' + reason), { code, bytesParsed, reason });
}

/** Buffer's own latin1 decoder (what `toString('latin1', start, end)` calls, without its argument checks). */
interface Latin1Slice {
  latin1Slice(start: number, end: number): string;
}

/** Is the byte a space or a tab (the OWS trimmed off the end of a header value)? */
function ows(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/**
 * A response head still in the bytes of the read (WasmParser.rawHeads), handed over instead of
 * strings: header i's name is data[spans[first + 6i + 1], spans[first + 6i + 2]) and its value
 * data[spans[first + 6i + 4], spans[first + 6i + 5]), the value with its trailing spaces and tabs
 * (llhttp strict: names are tokens, values have no CR, LF or other controls than HTAB). Valid only
 * inside kOnHeadersComplete; headers() turns it into what that callback is handed otherwise.
 */
export class RawHead {
  data: Buffer = Buffer.alloc(0);
  spans: readonly number[] = [];
  first = 0;
  /** Headers in the head. */
  count = 0;
  readonly #parser: WasmParser;

  constructor(parser: WasmParser) {
    this.#parser = parser;
  }

  /** The head as strings, [name, value, ...] as received (the status text then in statusText()). */
  headers(): string[] {
    return this.#parser.materialize();
  }

  statusText(): string {
    return this.#parser.statusText();
  }

  /** Where the value of the header whose name span is at spans[at] ends, trailing spaces and tabs left out. */
  valueEnd(at: number): number {
    const data = this.data;
    const vs = this.spans[at + 4]!;
    let e = this.spans[at + 5]!;
    while (e > vs && ows(data[e - 1]!)) e--;
    return e;
  }
}

/** A header name for nameIs(): lower-case letters, digits and `-` only. */
export function nameBytes(lower: string): Uint8Array {
  if (!/^[a-z0-9-]+$/.test(lower)) throw new Error(`nameBytes: ${lower}`);
  return Buffer.from(lower, 'latin1');
}

/**
 * Is data[start, start + lower.length) the name `lower` in any case? The caller has checked the
 * length. A token byte ORed with 0x20 equals a lower-case letter only for that letter in either
 * case, and a digit or `-` only for itself (the other byte it could be, a control, is no token).
 */
export function nameIs(data: Uint8Array, start: number, lower: Uint8Array): boolean {
  for (let i = 0; i < lower.length; i++) if ((data[start + i]! | 0x20) !== lower[i]) return false;
  return true;
}

export class WasmParser implements Omit<LlhttpParser, 'consume' | 'unconsume' | 'getCurrentBuffer'> {
  static readonly REQUEST = TYPE_REQUEST;
  static readonly RESPONSE = TYPE_RESPONSE;
  /** The callback slots (K_ON_*), as on Node's parser. */
  [k: number]: unknown;
  /**
   * Body chunks are copied (into the Buffer pool when small): set when the caller reuses the
   * buffer it passes to execute() (a socket read into one shared buffer). Otherwise a body
   * chunk is a slice of that buffer.
   */
  copyBodies = false;
  /**
   * A response head read whole in one read is handed to kOnHeadersComplete as `null` headers,
   * with its bytes in `raw` (no strings made unless raw.headers() asks for them).
   */
  rawHeads = false;
  readonly raw: RawHead = new RawHead(this);
  /** Spans of this message were made into strings already (its head spread over reads). */
  #flushed = false;
  #ptr = 0;
  #type = TYPE_REQUEST;
  #max = DEFAULT_MAX_HEADER_SIZE;
  /** Bytes of the head so far (URL or status text, names, values), as Node's binding counts them. */
  #headBytes = 0;
  #overflow = false;
  /** Between the end of a head and the end of its message (names and values then are trailers). */
  #inBody = false;
  /** Bytes parsed before the read being parsed; the position after the last byte of a callback. */
  #total = 0;
  #lastData = 0;
  /** A message ended: the framing since its last byte (a chunked body's last-chunk extensions) is checked at the next callback or read end. */
  #gapCheck = false;
  #framingOverflow = false;
  // This read's spans, as [kind, start, end] offsets into curData (made into strings at once).
  #spans: number[] = [];
  #nspans = 0;
  // The message's pieces so far.
  #url = '';
  #status = '';
  /** Names and values as [name, value, ...] (a value still arriving is the last entry). */
  #headers: string[] = [];
  #names = 0;
  #vals = 0;

  initialize(type: number, _resource: object, maxHeaderSize: number, lenientFlags: number): void {
    if (lenientFlags !== 0) throw new Error('WasmParser: lenient flags are not supported');
    if (type !== TYPE_REQUEST && type !== TYPE_RESPONSE) throw new Error(`WasmParser: unknown type ${type}`);
    if (this.#ptr !== 0) wasm.llhttp_free(this.#ptr);
    this.#type = type;
    this.#max = maxHeaderSize > 0 ? maxHeaderSize : DEFAULT_MAX_HEADER_SIZE;
    this.#ptr = wasm.llhttp_alloc(type);
    this.#resetMessage();
  }

  /** Parses `data`: the bytes parsed, or an Error with llhttp's code (`HPE_...`) and `bytesParsed`. */
  execute(data: Buffer): number | ParseError {
    const p = this.#ptr;
    if (p === 0) throw new Error('WasmParser: not initialized');
    const len = data.length;
    // Re-entered from a callback of another parser's run: a buffer of this run's own.
    const nested = cur !== null;
    const prev = cur;
    const prevData = curData;
    const prevPtr = curPtr;
    let ptr: number;
    if (nested) ptr = wasm.malloc(Math.max(len, 1));
    else {
      if (len > inSize) {
        if (inPtr !== 0) wasm.free(inPtr);
        inSize = Math.ceil(len / 4096) * 4096;
        inPtr = wasm.malloc(inSize);
      }
      ptr = inPtr;
    }
    memory().set(data, ptr);
    cur = this;
    curData = data;
    curPtr = ptr;
    let err: number;
    try {
      err = wasm.llhttp_execute(p, ptr, len);
      if (this.#nspans > 0) this.#flushSpans();
    } finally {
      cur = prev;
      curData = prevData;
      curPtr = prevPtr;
      if (nested) wasm.free(ptr);
    }
    let nread = len;
    if (err === E_OK && (this.#inBody || this.#gapCheck) && this.#total + len - this.#lastData > MAX_CHUNK_FRAMING) {
      this.#total += len;
      return parseError('HPE_CHUNK_EXTENSIONS_OVERFLOW', 'Chunk extensions overflow', len);
    }
    this.#total += len;
    if (err !== E_OK) {
      nread = wasm.llhttp_get_error_pos(p) - ptr;
      if (err === E_PAUSED_UPGRADE) {
        // Not an error: llhttp stops at the end of an upgrade's head; the rest belongs to the tunnel.
        err = E_OK;
        wasm.llhttp_resume_after_upgrade(p);
      }
    }
    if (err !== E_OK && wasm.llhttp_get_upgrade(p) === 0) return this.#error(err, nread);
    return nread;
  }

  /** The peer sent FIN: completes a close-delimited message, or an Error for one cut short. */
  finish(): undefined | ParseError {
    const p = this.#ptr;
    if (p === 0) return undefined;
    const prev = cur;
    cur = this;
    let err: number;
    try {
      err = wasm.llhttp_finish(p);
    } finally {
      cur = prev;
    }
    if (err === E_OK || wasm.llhttp_get_upgrade(p) !== 0) return undefined;
    return this.#error(err, 0);
  }

  close(): void {
    if (this.#ptr === 0) return;
    wasm.llhttp_free(this.#ptr);
    this.#ptr = 0;
  }

  #error(err: number, bytesParsed: number): ParseError {
    if (err === E_USER && this.#framingOverflow) return parseError('HPE_CHUNK_EXTENSIONS_OVERFLOW', 'Chunk extensions overflow', bytesParsed);
    if (err === E_USER && this.#overflow) return parseError('HPE_HEADER_OVERFLOW', 'Header overflow', bytesParsed);
    return parseError(errnoName(err), cString(wasm.llhttp_get_error_reason(this.#ptr)), bytesParsed);
  }

  #resetMessage(): void {
    this.#flushed = false;
    this.#headBytes = 0;
    this.#overflow = false;
    this.#inBody = false;
    this.#nspans = 0;
    this.#url = '';
    this.#status = '';
    if (this.#names !== 0) this.#headers = [];
    this.#names = 0;
    this.#vals = 0;
  }

  /** @internal (from WebAssembly) */
  onMessageBegin(): number {
    this.#resetMessage();
    const cb = this[K_ON_MESSAGE_BEGIN];
    if (typeof cb === 'function') cb();
    return 0;
  }

  /** @internal A piece of the URL, status text, a header name or value (trailers too). */
  span(kind: number, at: number, len: number): number {
    this.#headBytes += len;
    if (this.#headBytes >= this.#max) {
      this.#overflow = true;
      return E_USER;
    }
    const off = at - curPtr;
    if (this.#gapCheck) {
      // The first piece of the next message (after its method, or its version and status code).
      this.#gapCheck = false;
      if (this.#total + off - this.#lastData > MAX_CHUNK_FRAMING + 32) {
        this.#framingOverflow = true;
        return E_USER;
      }
    }
    // Written over in place (no push, no truncation: the array keeps its length between reads).
    const sp = this.#spans;
    const n = this.#nspans;
    sp[n] = kind;
    sp[n + 1] = off;
    sp[n + 2] = off + len;
    this.#nspans = n + 3;
    this.#lastData = this.#total + off + len;
    return 0;
  }

  /** The spans of this read as strings: one latin1 decode, cut into substrings. */
  #flushSpans(): void {
    this.#flushed = true;
    const sp = this.#spans;
    const n = this.#nspans;
    const base = sp[1]!;
    const all = (curData as Buffer & Latin1Slice).latin1Slice(base, sp[n - 1]!);
    for (let i = 0; i < n; i += 3) {
      const kind = sp[i]!;
      const s = n === 3 ? all : all.substring(sp[i + 1]! - base, sp[i + 2]! - base);
      const h = this.#headers;
      if (kind === FIELD) {
        // A name continues (split across reads) until its value starts (Node's binding counts the same way).
        if (this.#names === this.#vals) {
          h.push(s);
          this.#names++;
        } else h[h.length - 1] += s;
      } else if (kind === VALUE) {
        if (this.#vals !== this.#names) {
          h.push(s);
          this.#vals++;
        } else h[h.length - 1] += s;
      } else if (kind === SPAN_URL) this.#url += s;
      else this.#status += s;
    }
    this.#nspans = 0;
  }

  /** Names and values as [name, value, ...], values without trailing spaces or tabs. */
  #takeHeaders(): string[] {
    const h = this.#headers;
    if (this.#vals < this.#names) {
      h.push('');
      this.#vals++;
    }
    for (let i = 1; i < h.length; i += 2) {
      const v = h[i]!;
      let e = v.length;
      if (e === 0 || !ows(v.charCodeAt(e - 1))) continue;
      while (e > 0 && ows(v.charCodeAt(e - 1))) e--;
      h[i] = v.slice(0, e);
    }
    this.#headers = [];
    this.#names = 0;
    this.#vals = 0;
    return h;
  }

  /** @internal */
  onHeadersComplete(status: number, upgrade: number, keepAlive: number): number {
    if (this.rawHeads && !this.#flushed && this.#type === TYPE_RESPONSE && this.#rawShape()) return this.#rawHeadersComplete(status, upgrade, keepAlive);
    if (this.#nspans > 0) this.#flushSpans();
    const p = this.#ptr;
    const headers = this.#takeHeaders();
    this.#headBytes = 0;
    this.#inBody = true;
    const cb = this[K_ON_HEADERS_COMPLETE];
    if (typeof cb !== 'function') return 0;
    const major = wasm.llhttp_get_http_major(p);
    const minor = wasm.llhttp_get_http_minor(p);
    let r: unknown;
    if (this.#type === TYPE_REQUEST) {
      r = cb(major, minor, headers, wasm.llhttp_get_method(p), this.#url, undefined, undefined, upgrade === 1, keepAlive === 1);
    } else {
      r = cb(major, minor, headers, undefined, undefined, status, this.#status, upgrade === 1, keepAlive === 1);
    }
    return typeof r === 'number' ? r | 0 : 0;
  }

  /** This read's spans are the whole head: a status text or none, then names and values in turn. */
  #rawShape(): boolean {
    const sp = this.#spans;
    const n = this.#nspans;
    let i = n > 0 && sp[0] === STATUS ? 3 : 0;
    for (; i < n; i += 6) if (sp[i] !== FIELD || i + 3 >= n || sp[i + 3] !== VALUE) return false;
    return true;
  }

  #rawHeadersComplete(status: number, upgrade: number, keepAlive: number): number {
    this.#headBytes = 0;
    this.#inBody = true;
    const cb = this[K_ON_HEADERS_COMPLETE];
    const n = this.#nspans;
    const raw = this.raw;
    const first = n > 0 && this.#spans[0] === STATUS ? 3 : 0;
    raw.data = curData;
    raw.spans = this.#spans;
    raw.first = first;
    raw.count = (n - first) / 6;
    let r: unknown = 0;
    try {
      if (typeof cb === 'function') {
        const p = this.#ptr;
        r = cb(wasm.llhttp_get_http_major(p), wasm.llhttp_get_http_minor(p), null, undefined, undefined, status, '', upgrade === 1, keepAlive === 1);
      }
    } finally {
      // What the callback did not take as strings is dropped with the read.
      raw.data = EMPTY;
      raw.count = 0;
      this.#nspans = 0;
      this.#status = '';
      if (this.#names !== 0) this.#headers = [];
      this.#names = 0;
      this.#vals = 0;
    }
    return typeof r === 'number' ? r | 0 : 0;
  }

  /** @internal RawHead.headers(): the head's strings, from inside kOnHeadersComplete. */
  materialize(): string[] {
    if (this.#nspans > 0) this.#flushSpans();
    return this.#takeHeaders();
  }

  /** @internal RawHead.statusText(), after materialize(). */
  statusText(): string {
    if (this.#nspans > 0) this.#flushSpans();
    return this.#status;
  }

  /** @internal */
  onBody(at: number, len: number): number {
    const off = at - curPtr;
    if (this.#total + off - this.#lastData > MAX_CHUNK_FRAMING) {
      this.#framingOverflow = true;
      return E_USER;
    }
    this.#lastData = this.#total + off + len;
    const cb = this[K_ON_BODY];
    if (typeof cb !== 'function') return 0;
    let b: Buffer;
    if (this.copyBodies) {
      b = Buffer.allocUnsafe(len);
      curData.copy(b, 0, off, off + len);
    } else b = curData.subarray(off, off + len);
    cb(b);
    return 0;
  }

  /** @internal */
  onMessageComplete(): number {
    if (this.#nspans > 0) this.#flushSpans();
    if (this.#inBody && this.#names > 0) {
      // Trailers, as Node's binding hands them over: kOnHeaders before kOnMessageComplete.
      const t = this.#takeHeaders();
      const h = this[K_ON_HEADERS];
      if (typeof h === 'function') h(t, '');
    }
    if (this.#inBody) this.#gapCheck = true;
    this.#inBody = false;
    const cb = this[K_ON_MESSAGE_COMPLETE];
    if (typeof cb === 'function') cb();
    return 0;
  }
}

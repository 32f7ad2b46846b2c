// Header work on the hot path: one pass over rawHeaders each way, no
// req.headers (Node builds it lazily), no regex, constant sets.
import { Buffer } from 'node:buffer';
import { util as undiciUtil } from 'undici';
import { nameBytes, nameIs, type RawHead } from '../core/llhttp.ts';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1, and those proxies drop in practice), lower-case: by
 * length, then by value (a Set would hash every fresh name the parser makes).
 */
function isHopByHop(lower: string): boolean {
  switch (lower.length) {
    case 2:
      return lower === 'te';
    case 7:
      return lower === 'trailer' || lower === 'upgrade';
    case 10:
      return lower === 'connection' || lower === 'keep-alive';
    case 14:
      return lower === 'http2-settings';
    case 16:
      return lower === 'proxy-connection';
    case 17:
      return lower === 'transfer-encoding';
    default:
      return false;
  }
}

/** What the request pass learned besides the forwarded header list. */
export interface RequestHeaderInfo {
  requestId: string;
  stickyValue: string | null;
  cookie: string | null;
  contentLength: number;
  chunked: boolean;
  forwardedFor: string;
  forwardedProto: string;
  forwardedHost: string;
  host: string;
  connectionTokens: string | null;
  /** `Expect: 100-continue` was sent (the header itself is not forwarded). */
  expectContinue: boolean;
  /** Why the request must be refused with 400 (more than one Host, an unsupported Expect), or ''. */
  invalid: string;
}

export function newRequestHeaderInfo(): RequestHeaderInfo {
  return {
    requestId: '',
    stickyValue: null,
    cookie: null,
    contentLength: -1,
    chunked: false,
    forwardedFor: '',
    forwardedProto: '',
    forwardedHost: '',
    host: '',
    connectionTokens: null,
    expectContinue: false,
    invalid: '',
  };
}

/**
 * Copies end-to-end request headers from `raw` into `out` (flat name/value
 * list) and fills `info`. x-forwarded-* and x-request-id are added by
 * `appendForwardingHeaders` afterwards. `stickyHeader` is lower-case or ''.
 */
export function filterRequestHeaders(raw: readonly string[], out: string[], info: RequestHeaderInfo, stickyHeader: string): void {
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.length < 64 ? name.toLowerCase() : name;
    switch (lower) {
      case 'connection':
        if (value.length > 10 || (value !== 'keep-alive' && value !== 'close' && value !== 'Keep-Alive')) info.connectionTokens = value;
        continue;
      case 'transfer-encoding':
        info.chunked = true;
        continue;
      case 'x-request-id':
        if (info.requestId === '') info.requestId = value;
        continue;
      case 'x-forwarded-for':
        info.forwardedFor = info.forwardedFor === '' ? value : `${info.forwardedFor}, ${value}`;
        continue;
      case 'x-forwarded-proto':
        info.forwardedProto = value;
        continue;
      case 'x-forwarded-host':
        info.forwardedHost = value;
        continue;
      case 'content-length':
        info.contentLength = Number(value);
        break;
      case 'host':
        // RFC 9112 §3.2: more than one Host is a 400; proxies must not pick one.
        if (++hosts > 1) info.invalid = 'more than one Host header';
        info.host = value;
        break;
      case 'expect':
        // Answered by the gateway (100 Continue once it will read the body), never forwarded.
        if (value.toLowerCase() === '100-continue') info.expectContinue = true;
        else info.invalid = `unsupported Expect: ${value.slice(0, 64)}`;
        continue;
      case 'cookie':
        info.cookie = info.cookie === null ? value : `${info.cookie}; ${value}`;
        break;
      default:
        if (isHopByHop(lower)) continue;
    }
    if (lower === stickyHeader && info.stickyValue === null) info.stickyValue = value;
    out.push(name, value);
  }
  if (info.connectionTokens !== null) removeConnectionListed(out, info.connectionTokens);
}

export function appendForwardingHeaders(out: string[], info: RequestHeaderInfo, remoteAddress: string, proto: string): void {
  out.push('x-request-id', info.requestId);
  out.push('x-forwarded-for', info.forwardedFor === '' ? remoteAddress : `${info.forwardedFor}, ${remoteAddress}`);
  out.push('x-forwarded-proto', info.forwardedProto === '' ? proto : info.forwardedProto);
  if (info.forwardedHost !== '' || info.host !== '') out.push('x-forwarded-host', info.forwardedHost === '' ? info.host : info.forwardedHost);
}

/** Result of the response pass. */
export interface ResponseHeaderInfo {
  hasRequestId: boolean;
  contentLength: number;
  eventStream: boolean;
  /** A date header is kept (the server then adds none). */
  hasDate: boolean;
}

/**
 * Builds the downstream header list from undici's raw response headers
 * (Buffers) or the lean client's (strings, names as received), dropping
 * hop-by-hop headers and those named in Connection.
 */
export function filterResponseHeaders(raw: readonly Buffer[] | readonly string[], out: string[], info: ResponseHeaderInfo): void {
  let connection: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    const v = raw[i + 1]!;
    const name = typeof n === 'string' ? n.toLowerCase() : undiciUtil.headerNameToString(n);
    const value = typeof v === 'string' ? v : v.toString('latin1');
    switch (name) {
      case 'connection':
        if (value !== 'keep-alive' && value !== 'close') connection = value;
        continue;
      case 'x-request-id':
        info.hasRequestId = true;
        break;
      case 'content-length':
        info.contentLength = Number(value);
        break;
      case 'content-type':
        if (value.startsWith('text/event-stream')) info.eventStream = true;
        break;
      case 'date':
        info.hasDate = true;
        break;
      default:
        if (isHopByHop(name)) continue;
    }
    out.push(name, value);
  }
  if (connection !== null) removeConnectionListed(out, connection);
}

const TE = nameBytes('te');
const DATE = nameBytes('date');
const TRAILER = nameBytes('trailer');
const UPGRADE = nameBytes('upgrade');
const CONNECTION = nameBytes('connection');
const KEEP_ALIVE = nameBytes('keep-alive');
const X_REQUEST_ID = nameBytes('x-request-id');
const CONTENT_TYPE = nameBytes('content-type');
const CONTENT_LENGTH = nameBytes('content-length');
const HTTP2_SETTINGS = nameBytes('http2-settings');
const PROXY_CONNECTION = nameBytes('proxy-connection');
const TRANSFER_ENCODING = nameBytes('transfer-encoding');
const EVENT_STREAM = Buffer.from('text/event-stream', 'latin1');
const KEEP_ALIVE_VALUE = Buffer.from('keep-alive', 'latin1');
const CLOSE_VALUE = Buffer.from('close', 'latin1');

/**
 * filterResponseHeaders on a response head still in bytes (the lean client's RawHead): sets
 * keep[i] to the end of header i's value without trailing spaces and tabs, or -1 for a header
 * not forwarded, and fills `info` the same way. false = a head for the string path (a Connection
 * header naming other headers, a content-length too long for a safe integer): `keep` and `info`
 * are then to be dropped.
 */
export function filterRawResponseHead(raw: RawHead, keep: number[], info: ResponseHeaderInfo): boolean {
  const { data, spans, count } = raw;
  for (let i = 0, at = raw.first; i < count; i++, at += 6) {
    const s = spans[at + 1]!;
    const vs = spans[at + 4]!;
    const ve = raw.valueEnd(at);
    let forward = true;
    switch (spans[at + 2]! - s) {
      case 2:
        forward = !nameIs(data, s, TE);
        break;
      case 4:
        if (nameIs(data, s, DATE)) info.hasDate = true;
        break;
      case 7:
        forward = !nameIs(data, s, TRAILER) && !nameIs(data, s, UPGRADE);
        break;
      case 10:
        if (nameIs(data, s, CONNECTION)) {
          if (!bytesAre(data, vs, ve, KEEP_ALIVE_VALUE) && !bytesAre(data, vs, ve, CLOSE_VALUE)) return false;
          forward = false;
        } else forward = !nameIs(data, s, KEEP_ALIVE);
        break;
      case 12:
        if (nameIs(data, s, X_REQUEST_ID)) info.hasRequestId = true;
        else if (nameIs(data, s, CONTENT_TYPE) && ve - vs >= EVENT_STREAM.length && bytesAre(data, vs, vs + EVENT_STREAM.length, EVENT_STREAM)) info.eventStream = true;
        break;
      case 14:
        if (nameIs(data, s, CONTENT_LENGTH)) {
          const n = decimal(data, vs, ve);
          if (n === -1) return false;
          info.contentLength = n;
        } else forward = !nameIs(data, s, HTTP2_SETTINGS);
        break;
      case 16:
        forward = !nameIs(data, s, PROXY_CONNECTION);
        break;
      case 17:
        forward = !nameIs(data, s, TRANSFER_ENCODING);
        break;
    }
    keep[i] = forward ? ve : -1;
  }
  return true;
}

function bytesAre(data: Uint8Array, start: number, end: number, want: Uint8Array): boolean {
  if (end - start !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (data[start + i] !== want[i]) return false;
  return true;
}

/** Digits only, 1 to 15 of them (a safe integer): the number, else -1. */
function decimal(data: Uint8Array, start: number, end: number): number {
  if (end <= start || end - start > 15) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = data[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

function removeConnectionListed(out: string[], tokens: string): void {
  const names = tokens.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== '' && t !== 'keep-alive' && t !== 'close');
  if (names.length === 0) return;
  for (let i = out.length - 2; i >= 0; i -= 2) {
    if (names.includes(out[i]!.toLowerCase())) out.splice(i, 2);
  }
}

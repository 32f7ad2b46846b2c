// Header work on the hot path: one pass over rawHeaders each way, no
// req.headers (Node builds it lazily), no regex, constant sets.
import { util as undiciUtil } from 'undici';

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
      default:
        if (isHopByHop(name)) continue;
    }
    out.push(name, value);
  }
  if (connection !== null) removeConnectionListed(out, connection);
}

function removeConnectionListed(out: string[], tokens: string): void {
  const names = tokens.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== '' && t !== 'keep-alive' && t !== 'close');
  if (names.length === 0) return;
  for (let i = out.length - 2; i >= 0; i -= 2) {
    if (names.includes(out[i]!.toLowerCase())) out.splice(i, 2);
  }
}

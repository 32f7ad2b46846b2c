// How uvicorn (Ray 2.53: uvicorn 0.38 with the httptools 0.9 parser) turns a
// request target into the ASGI scope["path"] and scope["query_string"] that
// Serve's proxy routes on and hands to the app
// (HttpToolsProtocol.on_headers_complete):
//   parsed = httptools.parse_url(target)      # http-parser's http_parser_parse_url
//   path = parsed.path.decode("ascii")         # no path (absolute-form "http://h") → 400
//   if "%" in path: path = urllib.parse.unquote(path)
//   query_string = parsed.query or b""
// An absolute-form target routes on its path, a fragment ("#...") is dropped,
// "%ZZ" stays as it is and invalid UTF-8 ("%FF") becomes U+FFFD. A target
// that http_parser_parse_url refuses is a 400 "Invalid HTTP request received."
//
// One implementation for both sides: the gateway routes on it
// (routing/route-table.ts) and the simulator derives a Serve proxy's scope
// from it (sim/serve-proxy.ts). Checked against httptools.parse_url and
// urllib.parse.unquote by differential fuzzing, and on real Serve by the
// conformance suite. [pure]

export interface RequestTarget {
  /** uvicorn's scope["path"]: decoded, no query, no fragment. */
  readonly path: string;
  /** uvicorn's scope["query_string"] (raw, no fragment). */
  readonly query: string;
}

/** httptools.parse_url refuses longer targets (http_parser keeps uint16 offsets). */
export const MAX_TARGET = 0xffff;

/** uvicorn's scope path and query_string for a request target; null where uvicorn answers 400. */
export function parseTarget(url: string): RequestTarget | null {
  const r = parseRawTarget(url);
  if (r === null) return null;
  const raw = r.rawPath;
  return { path: raw.indexOf('%') === -1 ? raw : unquote(raw), query: r.rawQuery };
}

// http_parser_parse_url (nodejs/http-parser as httptools builds it: HTTP_PARSER_STRICT,
// is_connect = 0). Checked against httptools.parse_url by differential fuzzing.
const DEAD = 0;
const START = 1;
const SCHEMA = 2;
const SCHEMA_SLASH = 3;
const SCHEMA_SLASH_SLASH = 4;
const SERVER_START = 5;
const SERVER = 6;
const SERVER_WITH_AT = 7;
const PATH = 8;
const QUERY_START = 9;
const QUERY = 10;
const FRAGMENT_START = 11;
const FRAGMENT = 12;

function isAlpha(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}
function isNum(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isAlnum(c: number): boolean {
  return isAlpha(c) || isNum(c);
}
function isHex(c: number): boolean {
  return isNum(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}
/** normal_url_char (strict): printable ASCII but "#" and "?". */
function isUrlChar(c: number): boolean {
  return c >= 33 && c <= 126 && c !== 35 /* # */ && c !== 63 /* ? */;
}
/** IS_USERINFO_CHAR: alphanum, mark (-_.!~*'()), and %;:&=+$, */
function isUserinfoChar(c: number): boolean {
  if (isAlnum(c)) return true;
  switch (c) {
    case 45: case 95: case 46: case 33: case 126: case 42: case 39: case 40: case 41:
    case 37: case 59: case 58: case 38: case 61: case 43: case 36: case 44:
      return true;
    default:
      return false;
  }
}
/** IS_HOST_CHAR (strict): alphanum . - */
function isHostChar(c: number): boolean {
  return isAlnum(c) || c === 46 || c === 45;
}

function urlChar(s: number, c: number): number {
  if (c === 32 || c === 13 || c === 10) return DEAD;
  switch (s) {
    case START:
      if (c === 47 || c === 42 /* * */) return PATH;
      return isAlpha(c) ? SCHEMA : DEAD;
    case SCHEMA:
      if (isAlpha(c)) return SCHEMA;
      return c === 58 /* : */ ? SCHEMA_SLASH : DEAD;
    case SCHEMA_SLASH:
      return c === 47 ? SCHEMA_SLASH_SLASH : DEAD;
    case SCHEMA_SLASH_SLASH:
      return c === 47 ? SERVER_START : DEAD;
    case SERVER_START:
    case SERVER:
    case SERVER_WITH_AT:
      if (c === 47) return PATH;
      if (c === 63) return QUERY_START;
      if (c === 64 /* @ */) return s === SERVER_WITH_AT ? DEAD : SERVER_WITH_AT;
      return isUserinfoChar(c) || c === 91 || c === 93 ? SERVER : DEAD;
    case PATH:
      if (isUrlChar(c)) return PATH;
      return c === 63 ? QUERY_START : c === 35 ? FRAGMENT_START : DEAD;
    case QUERY_START:
    case QUERY:
      if (isUrlChar(c) || c === 63) return QUERY;
      return c === 35 ? FRAGMENT_START : DEAD;
    case FRAGMENT_START:
      if (isUrlChar(c) || c === 63) return FRAGMENT;
      return c === 35 ? FRAGMENT_START : DEAD;
    case FRAGMENT:
      return isUrlChar(c) || c === 63 || c === 35 ? FRAGMENT : DEAD;
    default:
      return DEAD;
  }
}

export interface RawTarget {
  readonly rawPath: string;
  readonly rawQuery: string;
}

/** httptools.parse_url + uvicorn's check that there is a path; null = 400. */
export function parseRawTarget(url: string): RawTarget | null {
  const n = url.length;
  if (n === 0 || n > MAX_TARGET) return null;
  let s = START;
  let hostStart = -1;
  let hostEnd = -1;
  let pathStart = -1;
  let pathEnd = -1;
  let queryStart = -1;
  let queryEnd = -1;
  let foundAt = false;
  let hasSchema = false;
  for (let i = 0; i < n; i++) {
    s = urlChar(s, url.charCodeAt(i));
    switch (s) {
      case DEAD:
        return null;
      case SCHEMA:
        hasSchema = true;
        break;
      case SERVER:
      case SERVER_WITH_AT:
        if (s === SERVER_WITH_AT) foundAt = true;
        if (hostStart === -1) hostStart = i;
        hostEnd = i + 1;
        break;
      case PATH:
        if (pathStart === -1) pathStart = i;
        pathEnd = i + 1;
        break;
      case QUERY:
        if (queryStart === -1) queryStart = i;
        queryEnd = i + 1;
        break;
      default:
        break;
    }
  }
  if (hasSchema && hostStart === -1) return null;
  if (hostStart !== -1 && !validHost(url, hostStart, hostEnd, foundAt)) return null;
  if (pathStart === -1) return null; // uvicorn: None.decode() raises → 400
  // Strict URL characters are ASCII, so uvicorn's .decode("ascii") cannot fail.
  return { rawPath: url.slice(pathStart, pathEnd), rawQuery: queryStart === -1 ? '' : url.slice(queryStart, queryEnd) };
}

const H_DEAD = 0;
const H_USERINFO_START = 1;
const H_USERINFO = 2;
const H_HOST_START = 3;
const H_V6_START = 4;
const H_HOST = 5;
const H_V6 = 6;
const H_V6_END = 7;
const H_V6_ZONE_START = 8;
const H_V6_ZONE = 9;
const H_PORT_START = 10;
const H_PORT = 11;

function hostChar(s: number, c: number): number {
  switch (s) {
    case H_USERINFO:
    case H_USERINFO_START:
      if (c === 64) return H_HOST_START;
      return isUserinfoChar(c) ? H_USERINFO : H_DEAD;
    case H_HOST_START:
      if (c === 91 /* [ */) return H_V6_START;
      return isHostChar(c) ? H_HOST : H_DEAD;
    case H_HOST:
    case H_V6_END:
      if (s === H_HOST && isHostChar(c)) return H_HOST;
      return c === 58 ? H_PORT_START : H_DEAD;
    case H_V6:
    case H_V6_START:
      if (s === H_V6 && c === 93 /* ] */) return H_V6_END;
      if (isHex(c) || c === 58 || c === 46) return H_V6;
      return s === H_V6 && c === 37 ? H_V6_ZONE_START : H_DEAD;
    case H_V6_ZONE:
    case H_V6_ZONE_START:
      if (s === H_V6_ZONE && c === 93) return H_V6_END;
      return isAlnum(c) || c === 37 || c === 46 || c === 45 || c === 95 || c === 126 ? H_V6_ZONE : H_DEAD;
    case H_PORT:
    case H_PORT_START:
      return isNum(c) ? H_PORT : H_DEAD;
    default:
      return H_DEAD;
  }
}

/** http_parse_host plus the port range check of http_parser_parse_url. */
function validHost(url: string, from: number, to: number, foundAt: boolean): boolean {
  let s = foundAt ? H_USERINFO_START : H_HOST_START;
  let port = 0;
  for (let i = from; i < to; i++) {
    const c = url.charCodeAt(i);
    s = hostChar(s, c);
    if (s === H_DEAD) return false;
    if (s === H_PORT) {
      port = port * 10 + (c - 48);
      if (port > 0xffff) return false;
    }
  }
  return s === H_HOST || s === H_V6_END || s === H_PORT;
}

const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/**
 * Python's urllib.parse.unquote (utf-8, errors="replace"): "%XX" with two hex
 * digits is a byte, anything else after "%" stays as it is; each run of ASCII
 * characters is decoded as UTF-8 with U+FFFD for invalid sequences, other
 * characters pass through.
 */
export function unquote(s: string): string {
  // Fast path: escapes of ASCII bytes (%20, %2F, %6d) decode to one character each.
  const n = s.length;
  let out = '';
  let from = 0;
  for (let i = s.indexOf('%'); i !== -1 && i + 2 < n; i = s.indexOf('%', i)) {
    const hi = hexValue(s.charCodeAt(i + 1));
    const lo = hi === -1 ? -1 : hexValue(s.charCodeAt(i + 2));
    if (lo === -1) {
      i++;
      continue;
    }
    const b = hi * 16 + lo;
    if (b > 0x7f) return unquoteBytes(s);
    out += s.slice(from, i) + String.fromCharCode(b);
    i += 3;
    from = i;
  }
  return from === 0 ? s : out + s.slice(from);
}

/** unquote for targets with escapes of non-ASCII bytes: UTF-8 decoding with replacement. */
function unquoteBytes(s: string): string {
  const n = s.length;
  const bytes = new Uint8Array(n);
  let len = 0;
  let out = '';
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) {
      if (len > 0) out += UTF8.decode(bytes.subarray(0, len));
      len = 0;
      out += s[i];
      continue;
    }
    if (c === 37 /* % */ && i + 2 < n) {
      const hi = hexValue(s.charCodeAt(i + 1));
      const lo = hi === -1 ? -1 : hexValue(s.charCodeAt(i + 2));
      if (lo !== -1) {
        bytes[len++] = hi * 16 + lo;
        i += 2;
        continue;
      }
    }
    bytes[len++] = c;
  }
  if (len > 0) out += UTF8.decode(bytes.subarray(0, len));
  return out;
}

// Node's own llhttp binding, the parser node:http uses (`_http_common`: an undocumented module of
// the Node version the project pins; a change would fail at start, loudly). The lean server
// (proxy/h1-server.ts) and the lean client (upstream/h1-client.ts) parse with it, strict: both
// initialize it with no lenient flags.
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

const common = createRequire(import.meta.url)('_http_common') as { HTTPParser: LlhttpParserClass; methods: readonly string[] };
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
export function closeParser(p: LlhttpParser): void {
  p.close();
}

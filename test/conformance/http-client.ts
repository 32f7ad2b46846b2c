// Minimal HTTP/1.1 client for the conformance cases: a fresh connection per
// request (no pool left behind), raw headers, and streams that can be cut.
// `target` sends a request target verbatim (absolute-form, "#", "%ZZ", "*"):
// node:http writes the `path` option as given, checking only that it has no
// character outside U+0021..U+00FF.
import { request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer | readonly Buffer[];
  /** Request target written as is on the request line, instead of the URL's path and query. */
  readonly target?: string;
}

export function send(url: string, opts: RequestOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const options = { method: opts.method ?? 'GET', headers: opts.headers, agent: false, ...(opts.target !== undefined ? { path: opts.target } : {}) };
    const req = httpRequest(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const b = opts.body;
    if (Array.isArray(b)) {
      for (const c of b) req.write(c);
      req.end();
    } else req.end(b as string | Buffer | undefined);
  });
}

export function sendJson(url: string, doc: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return send(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(doc) });
}

/** An open streaming response: resolves once headers and the first body chunk arrived. */
export interface OpenStream {
  readonly res: IncomingMessage;
  readonly first: string;
  /** Cuts the connection (a client that goes away). */
  destroy(): void;
}

export function openStream(url: string, headers: Record<string, string> = {}): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req: ClientRequest = httpRequest(url, { headers, agent: false }, (res) => {
      res.once('data', (c: Buffer) => {
        res.pause();
        resolve({ res, first: c.toString('utf8'), destroy: () => req.destroy() });
      });
      res.once('end', () => reject(new Error(`stream ${url} ended before its first chunk (status ${res.statusCode})`)));
      res.on('error', () => {});
    });
    req.on('error', (err) => reject(err));
    req.end();
  });
}

/** Splits an SSE body into its `data:` payloads; throws on a malformed frame. */
export function sseData(body: string): string[] {
  if (!body.endsWith('\n\n')) throw new Error(`SSE body does not end with a blank line: ${JSON.stringify(body.slice(-40))}`);
  return body
    .slice(0, -2)
    .split('\n\n')
    .map((frame) => {
      if (!frame.startsWith('data: ')) throw new Error(`SSE frame is not "data: ...": ${JSON.stringify(frame)}`);
      return frame.slice('data: '.length);
    });
}

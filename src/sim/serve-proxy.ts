// One simulated Ray Serve proxy (the uvicorn server on port 8000 of a node):
// system endpoints, longest-prefix routing, per-proxy routers, Serve's texts
// and codes (serve.md §1.4–1.7, §2, §3), and the generic app behaviour that
// stands in for user code (docs/simulator.md). Nothing is logged per request.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HostPort } from '../config/types.ts';
import type { AppRuntime, Replica, Waiter } from './app-runtime.ts';
import { ProxyRouter } from './proxy-router.ts';
import { parseTarget } from '../core/request-target.ts';
import { formatHostPort, SimServer } from './sim-server.ts';

/** What a proxy needs from its cluster. */
export interface ProxyHost {
  readonly name: string;
  readonly requestTimeoutS: number | null;
  /** Serve's LongestPrefixRouter.match_route on uvicorn's scope path. */
  match(path: string): AppRuntime | null;
  /** Minified `{route_prefix: app}` JSON. */
  routesBody(): string;
  routeTableEmpty(): boolean;
  anyRunningReplicas(): boolean;
  readonly runtimes: ReadonlyMap<string, AppRuntime>;
}

export interface ProxyCounters {
  requests: number;
  /** Client disconnects before the response ended (499). */
  cancelled: number;
  /** Responses by status code (cut streams are not counted). */
  responses: Record<string, number>;
}

const TEXT = 'text/plain; charset=utf-8';
const SSE = 'text/event-stream; charset=utf-8';
export const KEEP_ALIVE_TIMEOUT_MS = 90_000;
/** JSON bodies up to this size are parsed to look for `"stream": true`. */
const MAX_PARSED_BODY = 64 * 1024;

export class SimProxy extends SimServer {
  readonly index: number;
  readonly host: ProxyHost;
  draining = false;
  counters: ProxyCounters = { requests: 0, cancelled: 0, responses: {} };
  readonly routers = new Map<string, ProxyRouter>();

  constructor(host: ProxyHost, index: number, address: HostPort) {
    super(address);
    this.host = host;
    this.index = index;
    for (const [name, rt] of host.runtimes) this.routers.set(name, new ProxyRouter(rt));
  }

  get label(): string {
    return formatHostPort(this.address);
  }

  protected override configure(server: Server): void {
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    server.requestTimeout = 0; // Serve sets no request body limit or deadline of its own
    // uvicorn's parser is llhttp too: what it refuses gets uvicorn's 400
    // (httptools_impl data_received) instead of node's bare one; the rest as
    // node's default handler does.
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      const code = err.code ?? '';
      const pending = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage;
      if (!socket.writable || pending?.headersSent === true) socket.destroy();
      else if (code === 'HPE_HEADER_OVERFLOW') socket.end('HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n');
      else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
      else if (code.startsWith('HPE_')) socket.end(INVALID_REQUEST_REPLY);
      else socket.destroy();
    });
  }

  /** Serve's ProxyRouter.ready_for_traffic, in Serve's order; null = healthy. */
  healthMessage(): string | null {
    if (this.draining) return 'This node is being drained.';
    if (this.host.routeTableEmpty()) return 'Route table is not populated yet.';
    // Index 0 plays the head-node proxy, which is exempt (scale from zero).
    if (this.index > 0 && !this.host.anyRunningReplicas()) return 'No replicas are available yet.';
    return null;
  }

  count(status: number): void {
    const r = this.counters.responses;
    r[status] = (r[status] ?? 0) + 1;
  }

  resetStats(): void {
    this.counters = { requests: 0, cancelled: 0, responses: {} };
  }

  protected serve(req: IncomingMessage, res: ServerResponse): void {
    // uvicorn's scope path and query_string (request-target.ts): Serve routes
    // on the path and the app sees both. Targets uvicorn refuses never reach Serve.
    const target = parseTarget(req.url ?? '/');
    if (target === null) {
      invalidRequest(req, res);
      return;
    }
    const { path, query } = target;
    const given = req.headers['x-request-id'];
    const rid = typeof given === 'string' && given !== '' ? given : randomUUID();
    res.setHeader('server', 'uvicorn');
    res.setHeader('x-request-id', rid);
    if (path === '/-/healthz' || path === '/-/routes') {
      const unhealthy = this.healthMessage();
      if (unhealthy !== null) this.#text(req, res, 503, unhealthy);
      else if (path === '/-/healthz') this.#text(req, res, 200, 'success');
      else this.#reply(req, res, 200, 'application/json', this.host.routesBody());
      return;
    }
    // Like Serve, system endpoints are not counted as requests.
    this.counters.requests++;
    const rt = this.host.match(path);
    const router = rt ? this.routers.get(rt.app.name) : undefined;
    if (!rt || !router) {
      this.#text(req, res, 404, `Path '${path}' not found. Ping http://.../-/routes for available routes.`);
      return;
    }
    new Exchange(this, router, req, res, rid, path, query).start();
  }

  #text(req: IncomingMessage, res: ServerResponse, status: number, text: string): void {
    this.#reply(req, res, status, TEXT, text);
  }

  #reply(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string): void {
    // Serve's proxy sends /-/healthz, /-/routes and 404 replies without a
    // content-length (chunked), as real Ray 2.53 does (docs/compatibility.md).
    res.writeHead(status, { 'content-type': type });
    res.end(body);
    this.count(status);
    req.resume();
  }
}

const INVALID_REQUEST = 'Invalid HTTP request received.';
const INVALID_REQUEST_REPLY =
  `HTTP/1.1 400 Bad Request\r\nserver: uvicorn\r\ncontent-type: ${TEXT}\r\ncontent-length: ${INVALID_REQUEST.length}\r\nconnection: close\r\n\r\n${INVALID_REQUEST}`;

/**
 * uvicorn's own reply to a request it cannot parse (httptools_impl
 * send_400_response): no x-request-id (Serve never saw it), connection closed.
 */
function invalidRequest(req: IncomingMessage, res: ServerResponse): void {
  res.shouldKeepAlive = false;
  res.writeHead(400, { server: 'uvicorn', 'content-type': TEXT, 'content-length': INVALID_REQUEST.length, connection: 'close' });
  res.end(INVALID_REQUEST);
  req.resume();
}

function sendBody(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const QUEUED = 0;
const RUNNING = 1;
const DONE = 2;

/** One request to an app, from routing to its last byte. */
class Exchange implements Waiter {
  readonly proxy: SimProxy;
  readonly router: ProxyRouter;
  readonly rt: AppRuntime;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly rid: string;
  /** uvicorn's scope path (decoded): what the app sees. */
  readonly path: string;
  readonly query: string;
  state = QUEUED;
  replica: Replica | null = null;
  timer: ReturnType<typeof setTimeout> | null = null;
  deadline: ReturnType<typeof setTimeout> | null = null;
  bodyBytes = 0;
  bodyDone = false;
  latencyDone = false;
  chunks: Buffer[] | null = null;
  tokens = 0;
  intervalMs = 0;

  constructor(proxy: SimProxy, router: ProxyRouter, req: IncomingMessage, res: ServerResponse, rid: string, path: string, query: string) {
    this.proxy = proxy;
    this.router = router;
    this.rt = router.runtime;
    this.req = req;
    this.res = res;
    this.rid = rid;
    this.path = path;
    this.query = query;
  }

  start(): void {
    const rt = this.rt;
    if (rt.status === 'DEPLOY_FAILED') {
      rt.stats.errors++;
      this.#text(503, `Deployment(name='${rt.app.ingressDeployment}', app='${rt.app.name}') is unavailable because it failed to deploy.`);
      this.req.resume();
      this.state = DONE;
      return;
    }
    this.res.on('close', this.#onClose);
    const t = this.proxy.host.requestTimeoutS;
    if (t !== null) this.deadline = setTimeout(this.#onTimeout, t * 1000);
    const routed = this.router.route(this);
    if (routed.kind === 'assigned') this.#run(routed.replica);
    else if (routed.kind === 'rejected') {
      this.#finish();
      this.#text(503, routed.message);
      this.req.resume();
    }
  }

  assign(replica: Replica): void {
    this.router.dequeued();
    this.#run(replica);
  }

  #run(replica: Replica): void {
    this.state = RUNNING;
    this.replica = replica;
    const b = this.rt.behaviour;
    let latency = b.latencyMs;
    this.tokens = b.tokens;
    this.intervalMs = b.tokenIntervalMs;
    if (this.query !== '') {
      const p = new URLSearchParams(this.query);
      latency = intParam(p.get('latency_ms'), latency);
      this.tokens = intParam(p.get('tokens'), this.tokens);
      this.intervalMs = intParam(p.get('interval_ms'), this.intervalMs);
    }
    latency += this.rt.faults.latencyMs;
    const req = this.req;
    if (this.path.endsWith('/echo')) {
      this.timer = setTimeout(this.#echo, latency);
      return;
    }
    const type = req.headers['content-type'];
    const len = Number(req.headers['content-length'] ?? 0);
    if (type !== undefined && type.includes('json') && len <= MAX_PARSED_BODY) this.chunks = [];
    req.on('data', (chunk: Buffer) => {
      this.bodyBytes += chunk.length;
      if (this.chunks !== null) {
        if (this.bodyBytes <= MAX_PARSED_BODY) this.chunks.push(chunk);
        else this.chunks = null;
      }
    });
    req.on('end', () => {
      this.bodyDone = true;
      if (this.latencyDone) this.#respond();
    });
    this.timer = setTimeout(this.#afterLatency, latency);
  }

  #afterLatency = (): void => {
    this.timer = null;
    this.latencyDone = true;
    if (this.bodyDone) this.#respond();
  };

  #respond(): void {
    if (this.state !== RUNNING) return;
    const rt = this.rt;
    const f = rt.faults;
    if (f.errorRate > 0 && Math.random() < f.errorRate) {
      rt.stats.errors++;
      this.#finish();
      this.#text(f.status, errorText(f.status, rt));
      return;
    }
    if (this.#wantsStream()) {
      this.res.writeHead(200, { 'content-type': SSE });
      this.res.flushHeaders();
      this.proxy.count(200);
      this.#token(0);
      return;
    }
    const req = this.req;
    const body = JSON.stringify({
      app: rt.app.name,
      cluster: rt.cluster,
      proxy: this.proxy.label,
      replica: this.replica?.id ?? null,
      method: req.method,
      path: this.path,
      query: this.query,
      request_id: this.rid,
      body_bytes: this.bodyBytes,
    });
    rt.stats.completed++;
    this.#finish();
    sendBody(this.res, 200, 'application/json', body);
    this.proxy.count(200);
  }

  #wantsStream(): boolean {
    if (this.path.endsWith('/stream')) return true;
    const accept = this.req.headers.accept;
    if (accept !== undefined && accept.includes('text/event-stream')) return true;
    const chunks = this.chunks;
    if (chunks === null || chunks.length === 0) return false;
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text.includes('"stream"')) return false;
    try {
      const doc = JSON.parse(text) as unknown;
      return typeof doc === 'object' && doc !== null && (doc as Record<string, unknown>)['stream'] === true;
    } catch {
      return false;
    }
  }

  #token = (i: number): void => {
    this.timer = null;
    if (this.state !== RUNNING) return;
    if (i >= this.tokens) {
      this.rt.stats.completed++;
      this.#finish();
      this.res.end('data: [DONE]\n\n');
      return;
    }
    this.res.write(`data: {"id":${JSON.stringify(this.rid)},"index":${i},"token":"tok${i} "}\n\n`);
    this.timer = setTimeout(this.#token, this.intervalMs, i + 1);
  };

  #echo = (): void => {
    this.timer = null;
    if (this.state !== RUNNING) return;
    const req = this.req;
    this.res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' });
    this.proxy.count(200);
    this.res.once('finish', () => {
      if (this.state !== RUNNING) return;
      this.rt.stats.completed++;
      this.#finish();
    });
    req.pipe(this.res);
  };

  #onTimeout = (): void => {
    this.deadline = null;
    if (this.state === DONE) return;
    const rt = this.rt;
    rt.stats.timeouts++;
    const headersSent = this.res.headersSent;
    this.#finish();
    if (headersSent) {
      this.res.destroy(); // Serve cuts a stream whose deadline passed after headers
      return;
    }
    const t = this.proxy.host.requestTimeoutS ?? 0;
    this.#text(408, `Request ${this.rid} timed out after ${pyFloat(t)}s.`);
    this.req.resume();
  };

  #onClose = (): void => {
    if (this.state === DONE) return;
    // The client went away before the response ended: cancel (Serve logs 499).
    this.rt.stats.cancelled++;
    this.proxy.counters.cancelled++;
    this.#finish();
  };

  /** Leaves the queue or frees the replica slot, stops every timer. */
  #finish(): void {
    if (this.state === QUEUED) this.router.cancel(this);
    this.state = DONE;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.timer = null;
    this.deadline = null;
    const r = this.replica;
    if (r !== null) {
      this.replica = null;
      this.rt.release(r);
    }
  }

  #text(status: number, text: string): void {
    if (this.res.destroyed) return;
    if (status === 500) {
      // The replica's own 500 for user code that raised: Ray 2.53 sends
      // content-length and no content-type (verified on real Serve).
      this.res.writeHead(500, { 'content-length': Buffer.byteLength(text) });
      this.res.end(text);
    } else {
      // Proxy-made replies (503 backpressure, 408): chunked, text/plain, like real Serve.
      this.res.writeHead(status, { 'content-type': TEXT });
      this.res.end(text);
    }
    this.proxy.count(status);
  }
}

function errorText(status: number, rt: AppRuntime): string {
  if (status === 500) return 'Internal Server Error';
  if (status === 503) return `Deployment(name='${rt.app.ingressDeployment}', app='${rt.app.name}') is unavailable because it failed to deploy.`;
  return STATUS_CODES[status] ?? 'Error';
}

function intParam(v: string | null, dflt: number): number {
  if (v === null) return dflt;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : dflt;
}

/** Python's str(float): 300 → "300.0", 0.5 → "0.5". */
export function pyFloat(n: number): string {
  return Number.isInteger(n) ? `${n}.0` : String(n);
}


// HTTP/1.1 upgrades (WebSockets, which Serve supports through FastAPI):
// routed, split and admitted like any request, then sent to one Serve proxy
// through undici's upgrade dispatch. Only a `101 Switching Protocols` answer
// turns the connection into a tunnel: until then not one byte of the client's
// goes upstream unparsed. Any other answer is relayed as an ordinary response
// and the client connection is closed after it, so whatever the client sent
// behind its upgrade request is never forwarded raw (docs/security.md).
// The tunnel holds its admission slot for its whole life (Serve counts it as an
// ongoing request). No retry: once the request was written it may have run.
import type { Duplex } from 'node:stream';
import { newRequestId } from '../core/request-id.ts';
import { Client, type Dispatcher } from 'undici';
import { ERRORS, type ErrorCode } from '../core/errors.ts';
import type { AppRoute, AppTarget, Snapshot } from '../control/snapshot.ts';
import { recordFailure } from '../health/outlier.ts';
import { matchRoute, upgradeRoutingPath, upstreamTarget } from '../routing/route-table.ts';
import { pickCluster, splitPoint, stickyKeyFromCookieHeader } from '../routing/traffic-split.ts';
import type { Endpoint } from '../upstream/endpoint.ts';
import { appendForwardingHeaders, filterRequestHeaders, filterResponseHeaders, newRequestHeaderInfo, type RequestHeaderInfo, type ResponseHeaderInfo } from './headers.ts';
import { selectGatewayApp } from './select-app.ts';
import { noHealthyText, notFoundText, queueFullText } from './local-reply.ts';
import type { DownstreamRequest } from './downstream.ts';
import type { ProxyDeps } from './pipeline.ts';

/** Upgrades never queue, so their waiter is never called. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNABORTED']);

export class UpgradeHandler {
  readonly deps: ProxyDeps;
  /** Live upgrades (node:http stops tracking upgraded sockets). */
  readonly live = new Set<UpgradeContext>();
  /** Bound once: the node:http 'upgrade' listener. */
  readonly handle: (req: DownstreamRequest, socket: Duplex, head: Buffer) => void;

  constructor(deps: ProxyDeps) {
    this.deps = deps;
    this.handle = (req, socket, head) => new UpgradeContext(this, req, socket, head).start();
  }

  get open(): number {
    return this.live.size;
  }

  /** Ends every upgraded connection (end of a shutdown's grace period, or close()). */
  closeAll(): void {
    for (const u of [...this.live]) u.close('');
  }
}

/** One upgrade request: its own undici Client (the socket leaves it on a 101) and its handler. */
class UpgradeContext implements Dispatcher.DispatchHandler {
  readonly owner: UpgradeHandler;
  readonly req: DownstreamRequest;
  readonly client: Duplex;
  /** Bytes the client sent after its request head: forwarded only after a 101. */
  readonly head: Buffer;
  readonly start0: number;
  readonly info: RequestHeaderInfo = newRequestHeaderInfo();
  snap: Snapshot | null = null;
  app: AppRoute | null = null;
  target: AppTarget | null = null;
  endpoint: Endpoint | null = null;
  upClient: Client | null = null;
  tunnel: Duplex | null = null;
  abortUpstream: ((err?: Error) => void) | null = null;
  admitted = false;
  recorded = false;
  /** Status sent to the client (0 = nothing yet). */
  status = 0;
  done = false;

  constructor(owner: UpgradeHandler, req: DownstreamRequest, client: Duplex, head: Buffer) {
    this.owner = owner;
    this.req = req;
    this.client = client;
    this.head = head;
    this.start0 = owner.deps.clock.now();
  }

  start(): void {
    const deps = this.owner.deps;
    const client = this.client;
    client.on('error', () => {});
    // Nothing the client sends is read until Serve switched protocols.
    client.pause();
    client.once('close', () => this.close(this.status === 0 ? ERRORS.DOWNSTREAM_ABORTED.flag : ''));
    const snap = (this.snap = deps.store.current);
    const path = upgradeRoutingPath(this.req.url ?? '/', headerValue(this.req.rawHeaders, 'upgrade') || undefined);
    const { app, invalid } =
      snap === null ? { app: null, invalid: null } : snap.gateway === null ? { app: matchRoute(snap.routes, path), invalid: null } : selectGatewayApp(snap.gateway, path, this.req.method ?? 'GET', this.req.rawHeaders, this.req.url ?? '/', deps.random);
    const headers: string[] = [];
    filterRequestHeaders(this.req.rawHeaders, headers, this.info, app?.stickyHeader ?? '');
    if (this.info.requestId === '') this.info.requestId = newRequestId();
    if (this.info.invalid !== '' || path.charCodeAt(0) !== 47 /* / */) {
      this.fail('BAD_REQUEST', `Bad request: ${this.info.invalid || 'the request target must be a path or an absolute URL that Serve can parse'}.`);
      return;
    }
    if (invalid !== null) {
      this.fail('BACKEND_INVALID', `${invalid}.`);
      return;
    }
    if (snap === null || app === null) {
      this.fail(snap === null ? 'NO_HEALTHY_UPSTREAM' : 'NO_ROUTE', snap === null ? 'Gateway has no routing snapshot yet.' : notFoundText(path, this.info.host));
      return;
    }
    this.app = app;
    const now = deps.clock.now();
    const target = chooseTarget(app, this.info.stickyValue, this.info.cookie, deps.random(), now);
    if (target === null) {
      this.fail('NO_HEALTHY_UPSTREAM', noHealthyText(app.name, app.targets[0]?.cluster.name ?? ''));
      return;
    }
    this.target = target;
    const limiter = target.limiter;
    const endpoint = target.cluster.pick(now, null);
    if (endpoint === null) {
      this.fail('NO_HEALTHY_UPSTREAM', noHealthyText(app.name, target.cluster.name));
      return;
    }
    // Upgrades do not wait in the queue: a free slot now, or 503.
    if (!limiter.tryAcquire()) {
      deps.metrics.rejections.labels(app.name, target.cluster.name, 'queue_full').inc();
      this.fail('QUEUE_FULL', queueFullText(limiter.queued, limiter.queueCapacity));
      return;
    }
    this.admitted = true;
    this.endpoint = endpoint;
    endpoint.inFlight++;
    target.cluster.inFlight++;
    target.cluster.openStreams++;
    this.owner.live.add(this);
    appendForwardingHeaders(headers, this.info, this.req.socket.remoteAddress ?? '', 'http');
    const cfg = snap!.config.upstream;
    this.upClient = new Client(endpoint.origin, {
      pipelining: 1,
      connectTimeout: cfg.connectTimeoutMs,
      headersTimeout: cfg.headersTimeoutMs,
      bodyTimeout: cfg.bodyTimeoutMs,
    });
    this.upClient.dispatch(
      {
        path: upstreamTarget(this.req.url ?? '/'),
        method: (this.req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers,
        upgrade: headerValue(this.req.rawHeaders, 'upgrade') || 'websocket',
      },
      this,
    );
  }

  // undici handler (legacy API, as the request pipeline)
  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.done) abort();
  }

  /** 101: the only answer that opens the tunnel. */
  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void {
    if (this.done) {
      socket.destroy();
      return;
    }
    this.status = statusCode;
    this.tunnel = socket;
    socket.on('error', () => {});
    let text = `HTTP/1.1 101 Switching Protocols\r\n`;
    let hasId = false;
    const raw = rawHeaders ?? [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString();
      if (name.length === 12 && name.toLowerCase() === 'x-request-id') hasId = true;
      text += `${name}: ${raw[i + 1]!.toString()}\r\n`;
    }
    if (!hasId) text += `x-request-id: ${this.info.requestId}\r\n`;
    if (this.snap!.config.serveClusterHeader) text += `x-serve-cluster: ${this.target!.cluster.name}\r\n`;
    this.client.write(`${text}\r\n`);
    if (this.head.length > 0) socket.write(this.head);
    socket.once('close', () => this.close(''));
    socket.pipe(this.client);
    this.client.pipe(socket);
    this.client.resume();
    this.record(101, '');
    void this.upClient?.close().catch(() => {});
  }

  /** Any other final answer: relayed as an ordinary response, then the connection closes. */
  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText?: string): boolean {
    if (statusCode < 200 || this.done) return true;
    this.status = statusCode;
    const out: string[] = [];
    const rinfo: ResponseHeaderInfo = { hasRequestId: false, contentLength: -1, eventStream: false, hasDate: false };
    filterResponseHeaders(rawHeaders, out, rinfo);
    if (!rinfo.hasRequestId) out.push('x-request-id', this.info.requestId);
    if (this.snap!.config.serveClusterHeader) out.push('x-serve-cluster', this.target!.cluster.name);
    let text = `HTTP/1.1 ${statusCode} ${statusText || 'Unknown'}\r\n`;
    for (let i = 0; i < out.length; i += 2) text += `${out[i]}: ${out[i + 1]}\r\n`;
    // No content-length: the body ends when this connection closes (RFC 9112 §6.3).
    this.client.write(`${text}connection: close\r\n\r\n`);
    this.client.on('drain', resume);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.done) return true;
    return this.client.write(chunk);
  }

  onComplete(): void {
    if (this.done) return;
    const status = this.status;
    this.record(status, '');
    this.client.end(() => this.client.destroy());
    this.release();
  }

  onError(err: Error & { code?: string }): void {
    if (this.done) return;
    if (this.status !== 0) {
      // Mid-response: nothing sensible can be sent; cut the connection.
      this.client.destroy();
      this.close(ERRORS.UPSTREAM_RESET.flag);
      return;
    }
    if (err.code === 'UND_ERR_INVALID_ARG' || err.code === 'UND_ERR_NOT_SUPPORTED') {
      this.fail('BAD_REQUEST', `Bad request: ${err.message}.`);
      return;
    }
    const connectFailed = err.code !== undefined && CONNECT_CODES.has(err.code);
    const snap = this.snap!;
    if (connectFailed) recordFailure(this.endpoint!.health, this.owner.deps.clock.now(), snap.config.health);
    const ep = this.endpoint!;
    const code: ErrorCode = connectFailed ? 'UPSTREAM_CONNECT_FAILED' : err.code === 'UND_ERR_HEADERS_TIMEOUT' ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_RESET';
    this.fail(code, `Could not open the upgrade to Serve endpoint ${ep.origin} (cluster '${ep.cluster}').`);
  }

  /** A local reply on the raw socket, then close. */
  fail(code: ErrorCode, text: string): void {
    if (this.done) return;
    const spec = ERRORS[code];
    const body = Buffer.from(text);
    this.status = spec.status;
    this.client.end(
      `HTTP/1.1 ${spec.status} ${statusText(spec.status)}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\n` +
        `x-request-id: ${this.info.requestId}\r\nx-gateway-flag: ${spec.flag}\r\n${spec.status === 503 ? 'retry-after: 1\r\n' : ''}connection: close\r\n\r\n${text}`,
      // Closed once written, whether or not the client closes its side (a half-open socket would hold shutdown).
      () => this.client.destroy(),
    );
    this.record(spec.status, spec.flag);
    this.release();
  }

  /** Ends the upgrade from either side (or at shutdown). */
  close(flag: string): void {
    if (this.done) return;
    // A tunnel was recorded at its 101; anything else is recorded now.
    if (this.status === 0) this.record(ERRORS.DOWNSTREAM_ABORTED.status, ERRORS.DOWNSTREAM_ABORTED.flag);
    else this.record(this.status, flag);
    this.release();
    this.abortUpstream?.();
    this.tunnel?.destroy();
    this.client.destroy();
  }

  release(): void {
    if (this.done) return;
    this.done = true;
    this.owner.live.delete(this);
    if (this.admitted) {
      this.admitted = false;
      this.target!.limiter.release();
      this.endpoint!.inFlight--;
      this.target!.cluster.inFlight--;
      this.target!.cluster.openStreams--;
    }
    if (this.status !== 101 && this.upClient !== null) void this.upClient.destroy().catch(() => {});
  }

  record(status: number, flag: string): void {
    if (this.recorded) return;
    this.recorded = true;
    const deps = this.owner.deps;
    const durationMs = deps.clock.now() - this.start0;
    const t = this.target;
    const app = this.app;
    const handles = t !== null && app !== null ? t.handles : deps.metrics.handles('', '');
    handles.countRequest(status, flag);
    handles.duration.observe(durationMs / 1000);
    if (t !== null && flag !== ERRORS.BAD_REQUEST.flag) {
      const upstreamError = status >= 500 && flag !== ERRORS.QUEUE_FULL.flag;
      t.stats.record({ upstreamError, latencyMs: durationMs, ttfbMs: null, shed: flag === ERRORS.QUEUE_FULL.flag });
    }
    deps.accessLog.log(this.info.requestId, this.req.method ?? '', this.req.url ?? '', app?.name ?? '', t?.cluster.name ?? '', status, flag, 1, durationMs, -1);
  }
}

/** The cluster for a new upgrade: the split's pick, else another serving cluster with the app. */
function chooseTarget(app: AppRoute, stickyHeaderValue: string | null, cookie: string | null, random01: number, now: number): AppTarget | null {
  let key: string | null = null;
  if (app.sticky !== null) key = app.sticky.kind === 'header' ? stickyHeaderValue : stickyKeyFromCookieHeader(cookie ?? undefined, app.sticky.name);
  const picked = app.targets[pickCluster(app.split, splitPoint(key === '' ? null : key, random01))];
  if (picked !== undefined && picked.cluster.isServing(now)) return picked;
  return app.targets.find((t) => t !== picked && t.serveApp !== null && t.cluster.isServing(now)) ?? null;
}

function headerValue(raw: readonly string[], name: string): string {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1]!;
  return '';
}

function statusText(status: number): string {
  return status === 400 ? 'Bad Request' : status === 404 ? 'Not Found' : status === 502 ? 'Bad Gateway' : status === 503 ? 'Service Unavailable' : status === 504 ? 'Gateway Timeout' : 'Error';
}

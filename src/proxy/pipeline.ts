// The request lifecycle as a fixed list of named phases (docs/architecture.md):
//   receive → route → pickCluster → readBody → admit → pickEndpoint → forward
//   → (onUpstreamError → retry | respond) → finish
// A buffered body is read before admission, so a client that is slow to send
// it holds no admission slot (docs/security.md); a streamed body is read after.
// One RequestContext per request holds every per-request field (fixed shape)
// and is itself the undici dispatch handler and the admission waiter, so the
// hot path creates no promises and no closures: node:http builds the request
// and response as GatewayRequest/GatewayResponse (createServer's
// IncomingMessage/ServerResponse options), whose `ctx` slot lets the close,
// body-data and body-end listeners be shared module-level functions.
// Metrics are plain-number cells resolved once per (app, cluster)
// (src/metrics/instruments.ts). `finish` runs exactly once.
import { Buffer } from 'node:buffer';
import { IncomingMessage, ServerResponse, type ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { DownstreamRequest, DownstreamResponse } from './downstream.ts';
import type { Duplex, Readable } from 'node:stream';
import { newRequestId } from '../core/request-id.ts';
import type { Dispatcher } from 'undici';
import type { Waiter } from '../admission/limiter.ts';
import type { Clock, TimerHandle } from '../core/clock.ts';
import { ERRORS, type ErrorCode } from '../core/errors.ts';
import type { AccessLog } from './access-log.ts';
import type { AppRoute, AppTarget, Snapshot, SnapshotStore } from '../control/snapshot.ts';
import type { Instruments } from '../metrics/instruments.ts';
import { matchRoute, routingPath, upstreamTarget } from '../routing/route-table.ts';
import { pickCluster, splitPoint, stickyKeyFromCookieHeader } from '../routing/traffic-split.ts';
import { recordFailure, recordSuccess } from '../health/outlier.ts';
import type { Endpoint, UpstreamConnection, ConnectionWaiter } from '../upstream/endpoint.ts';
import { classifyUpstreamError, decideRetry, type UpstreamFailure } from '../upstream/retry-policy.ts';
import {
  appendForwardingHeaders,
  filterRequestHeaders,
  filterRawResponseHead,
  filterResponseHeaders,
  newRequestHeaderInfo,
  type RequestHeaderInfo,
  type ResponseHeaderInfo,
} from './headers.ts';
import { modifyHeaders, redirectLocation, type GwRule } from '../core/gateway-rule.ts';
import { hostOf } from '../routing/gateway-routes.ts';
import { selectGatewayApp } from './select-app.ts';
import { noHealthyText, notFoundText, queueFullText, queueTimeoutText, sendLocalReply } from './local-reply.ts';
import { H1Request, H1Response, type BodySink, type ResponseOwner } from './h1-server.ts';
import type { RawHead } from '../core/llhttp.ts';

/** onRawHeaders' scratch (used and done with inside one call). */
const KEEP: number[] = [];
const EXTRA: string[] = [];
const RINFO: ResponseHeaderInfo = { hasRequestId: false, contentLength: -1, eventStream: false, hasDate: false };

export interface ProxyDeps {
  readonly store: SnapshotStore;
  readonly clock: Clock;
  readonly random: () => number;
  readonly metrics: Instruments;
  readonly accessLog: AccessLog;
  /** Is the gateway ready (first snapshot published, not draining)? */
  readonly ready: () => boolean;
}

/** Global request and retry counters (Envoy-style retry budget). */
export class ProxyCounters {
  activeRequests = 0;
  /** Requests received since start (a worker thread reports it: which threads take traffic). */
  handled = 0;
  activeRetries = 0;
}

/** The local reply for a try that failed and may not be retried (backpressure has its own). */
const FAILURE_CODE: Record<Exclude<UpstreamFailure, 'backpressure'>, ErrorCode> = {
  connect: 'UPSTREAM_CONNECT_FAILED',
  stale_connection: 'UPSTREAM_RESET',
  reset: 'UPSTREAM_RESET',
  timeout: 'UPSTREAM_TIMEOUT',
};

const DC = ERRORS.DOWNSTREAM_ABORTED.flag;
/** undici refused to send the request as given: the client's fault, never the cluster's. */
const INVALID_REQUEST_CODES = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);
/** Methods whose request may be sent again after it reached Serve (RFC 9110 §9.2.2), when bodiless. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** Set on a socket by clientError: the client fault that ends the request in progress on it. */
const FAULT = Symbol('serve-gateway.fault');
interface FaultMark {
  readonly code: ErrorCode;
  /** The status to log; 0 = the one already sent. */
  readonly status: number;
}
/** Flags of failures the upstream is to blame for (count against rollout gates). */
const UPSTREAM_FLAGS = new Set<string>(Object.values(ERRORS).filter((e) => e.source === 'upstream').map((e) => e.flag));

/** node:http's request with a slot for its RequestContext (declared, so every instance has one shape). */
export class GatewayRequest extends IncomingMessage {
  ctx: RequestContext | null = null;
}

/** node:http's response with a slot for its RequestContext. */
export class GatewayResponse extends ServerResponse {
  ctx: RequestContext | null = null;
}

/** The createServer options that make node:http build GatewayRequest/GatewayResponse. */
export const SERVER_CLASSES: ServerOptions = {
  IncomingMessage: GatewayRequest,
  // A ServerResponse whose `req` is a GatewayRequest; node:http's types want the generic class.
  ServerResponse: GatewayResponse as unknown as typeof ServerResponse,
};

export class RequestPipeline {
  readonly deps: ProxyDeps;
  readonly counters = new ProxyCounters();
  /** Bound once: the data-plane server's request handler (the lean server's or node:http's 'request'). */
  readonly handle: (req: DownstreamRequest, res: DownstreamResponse) => void;

  constructor(deps: ProxyDeps) {
    this.deps = deps;
    this.handle = (req, res) => {
      const snap = this.deps.store.current;
      const ctx = new RequestContext(this, req, res, snap);
      ctx.receive();
    };
  }

  /**
   * node:http's 'clientError': a request that could not be parsed (400, 431 for
   * an oversized header block) or that timed out (server.request_header_timeout,
   * server.request_timeout: 408). Answered locally when nothing was sent yet on
   * the connection, then the connection is closed. A request already in
   * progress on it ends with that outcome and is never counted against a cluster.
   */
  /** CONNECT: the gateway is not a forward proxy. 405 with Allow, then close. */
  refuseConnect(req: DownstreamRequest, socket: Duplex): void {
    const text = 'CONNECT is not supported by this gateway.';
    const spec = ERRORS.METHOD_NOT_ALLOWED;
    socket.on('error', () => {});
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\ncontent-type: text/plain; charset=utf-8\r\n` +
        `content-length: ${text.length}\r\nx-gateway-flag: ${spec.flag}\r\nconnection: close\r\n\r\n${text}`,
      // Closed once written: node:http no longer tracks this socket, so a half-open one would hold close().
      () => socket.destroy(),
    );
    this.deps.metrics.handles('', '').countRequest(405, spec.flag);
    this.deps.accessLog.log('', 'CONNECT', req.url ?? '', '', '', 405, spec.flag, 0, 0, -1);
  }

  clientError(err: Error & { code?: string }, socket: Duplex): void {
    // node:http sets _httpMessage to null between responses on a keep-alive connection.
    const res = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
    this.clientFault(err.code, socket, res);
  }

  /**
   * The shared part of clientError for both engines: `res` is the response
   * on the connection now (null between requests).
   */
  clientFault(errCode: string | undefined, socket: Duplex, res: DownstreamResponse | null): void {
    // A connection the client reset or closed is not a malformed request: nothing to
    // answer or count (a request in progress on it ends as DC through its close listener).
    if (errCode === 'ECONNRESET' || errCode === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    const timeout = errCode === 'ERR_HTTP_REQUEST_TIMEOUT';
    const code: ErrorCode = timeout ? 'DOWNSTREAM_TIMEOUT' : 'BAD_REQUEST';
    const status = errCode === 'HPE_HEADER_OVERFLOW' ? 431 : ERRORS[code].status;
    const text = timeout ? 'Request timeout.' : `Bad request: ${errCode ?? 'malformed request'}.`;
    const inProgress = res !== null && !res.writableFinished ? res : null;
    if (inProgress !== null && inProgress.req.complete) {
      // The request in progress arrived whole; the bytes after it (pipelined) are
      // what broke. The connection cannot be parsed any further: it is closed, and
      // that request ends as the client's disconnect. The garbage is logged.
      socket.destroy();
      this.deps.metrics.handles('', '').countRequest(status, ERRORS[code].flag);
      this.deps.accessLog.log('', '', '', '', '', status, ERRORS[code].flag, 0, 0, -1);
      return;
    }
    if (inProgress !== null) {
      // This request's own body timed out or broke the framing: its RequestContext
      // finishes with this fault when the socket closes (onClientClose).
      (socket as Duplex & { [FAULT]?: FaultMark })[FAULT] = { code, status: inProgress.headersSent ? 0 : status };
      if (!inProgress.headersSent && !inProgress.destroyed) {
        inProgress.writeHead(status, ['content-type', 'text/plain; charset=utf-8', 'content-length', String(Buffer.byteLength(text)), 'x-gateway-flag', ERRORS[code].flag, 'connection', 'close']);
        inProgress.end(text);
      }
      socket.destroy();
      return;
    }
    if (res === null || !res.headersSent) {
      socket.write(
        `HTTP/1.1 ${status} ${status === 408 ? 'Request Timeout' : status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
          `content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nx-gateway-flag: ${ERRORS[code].flag}\r\nconnection: close\r\n\r\n${text}`,
      );
    }
    socket.destroy();
    const deps = this.deps;
    deps.metrics.handles('', '').countRequest(status, ERRORS[code].flag);
    deps.accessLog.log('', '', '', '', '', status, ERRORS[code].flag, 0, 0, -1);
  }
}

class RequestContext implements Waiter, ConnectionWaiter, Dispatcher.DispatchHandler, BodySink, ResponseOwner {
  readonly proxy: RequestPipeline;
  readonly req: DownstreamRequest;
  readonly res: DownstreamResponse;
  readonly snap: Snapshot | null;
  readonly startMs: number;
  readonly info: RequestHeaderInfo;
  headers: string[] = [];
  /** Every name and value in `headers` came through llhttp (strict) or is the gateway's own. */
  headersChecked = false;
  path = '';
  app: AppRoute | null = null;
  target: AppTarget | null = null;
  permit = false;
  // Waiter fields (set by the limiter).
  queueDeadlineMs = 0;
  queued = false;
  // Body: null none, Buffer buffered, the request stream when streamed.
  body: Buffer | Readable | null = null;
  bodyChunks: Buffer[] | null = null;
  endpoint: Endpoint | null = null;
  failedEndpoint: Endpoint | null = null;
  conn: UpstreamConnection | null = null;
  waitingConn = false;
  reusedSocket = false;
  attempts = 0;
  retrying = false;
  abortUpstream: ((err?: Error) => void) | null = null;
  responseStarted = false;
  discard = false;
  streaming = false;
  headersPending = false;
  resumeUpstream: (() => void) | null = null;
  onDrain: (() => void) | null = null;
  ttfbMs = -1;
  status = 0;
  done = false;
  clientGone = false;
  /** A client fault that ends this request (BAD_REQUEST, DOWNSTREAM_TIMEOUT), or null. */
  fault: ErrorCode | null = null;
  faultStatus = 0;
  writeTimer: TimerHandle | null = null;

  constructor(proxy: RequestPipeline, req: DownstreamRequest, res: DownstreamResponse, snap: Snapshot | null) {
    this.proxy = proxy;
    this.req = req;
    this.res = res;
    this.snap = snap;
    this.startMs = proxy.deps.clock.now();
    this.info = newRequestHeaderInfo();
  }

  // ── receive ────────────────────────────────────────────────────────────
  receive(): void {
    const { req, res } = this;
    const counters = this.proxy.counters;
    counters.activeRequests++;
    counters.handled++;
    if (res instanceof H1Response) res.ctx = this;
    else if (res instanceof GatewayResponse) {
      res.ctx = this;
      res.on('close', onResponseClose);
    } else (res as ServerResponse).once('close', () => this.onClientClose());
    this.path = routingPath(req.url ?? '/');
    const snap = this.snap;
    if (this.path.charCodeAt(1) === 45 /* - */ && (this.path === '/-/healthz' || this.path === '/-/routes')) {
      this.systemEndpoint();
      return;
    }
    if (snap === null) {
      this.fail('NO_HEALTHY_UPSTREAM', 'Gateway has no routing snapshot yet.');
      return;
    }
    this.route(snap);
  }

  /** `/-/healthz` and `/-/routes` answered by the gateway itself, like a Serve proxy. */
  systemEndpoint(): void {
    const ready = this.proxy.deps.ready() && this.snap !== null && this.snap.apps.size > 0;
    const text = !ready
      ? this.snap === null || this.snap.apps.size === 0
        ? 'Route table is not populated yet.'
        : 'This node is being drained.'
      : this.path === '/-/healthz'
        ? 'success'
        : this.snap!.routesJson;
    const body = Buffer.from(text);
    const ctype = ready && this.path === '/-/routes' ? 'application/json' : 'text/plain; charset=utf-8';
    this.info.requestId = this.requestIdFromRaw();
    this.res.writeHead(ready ? 200 : 503, ['content-type', ctype, 'content-length', String(body.length), 'x-request-id', this.info.requestId]);
    this.res.end(body);
    this.done = true;
    this.proxy.counters.activeRequests--;
  }

  requestIdFromRaw(): string {
    const raw = this.req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'x-request-id') return raw[i + 1]!;
    return newRequestId();
  }

  // ── route ──────────────────────────────────────────────────────────────
  route(snap: Snapshot): void {
    let app: AppRoute | null;
    let invalid: string | null = null;
    let rule: GwRule | null = null;
    if (snap.gateway === null) app = matchRoute(snap.routes, this.path);
    else ({ app, invalid, rule } = selectGatewayApp(snap.gateway, this.path, this.req.method ?? 'GET', this.req.rawHeaders, this.req.url ?? '/', this.proxy.deps.random));
    filterRequestHeaders(this.req.rawHeaders, this.headers, this.info, app === null ? '' : app.stickyHeader);
    if (this.info.requestId === '') this.info.requestId = newRequestId();
    if (this.info.invalid !== '' || this.path.charCodeAt(0) !== 47 /* / */) {
      // Malformed for a proxy (RFC 9112 §3.2, §3.2.4): refused here, never forwarded or counted.
      this.fail('BAD_REQUEST', `Bad request: ${this.info.invalid || 'the request target must be a path or an absolute URL that Serve can parse'}.`);
      return;
    }
    if (rule !== null && rule.redirect !== null) {
      this.redirect(rule);
      return;
    }
    if (invalid !== null) {
      this.fail('BACKEND_INVALID', `${invalid}.`);
      return;
    }
    if (app === null) {
      this.fail('NO_ROUTE', notFoundText(this.path, this.info.host));
      return;
    }
    this.app = app;
    appendForwardingHeaders(this.headers, this.info, this.req.socket.remoteAddress ?? '', 'http');
    if (rule !== null && rule.requestHeaders !== null) modifyHeaders(this.headers, rule.requestHeaders);
    // The lean server's llhttp is strict whatever the process flags (node:http's follows
    // --insecure-http-parser); values a route's filter sets come from a Kubernetes object. Only
    // a request read by the lean server with no such values skips the client's per-value check.
    this.headersChecked = this.req instanceof H1Request && (rule === null || rule.requestHeaders === null);
    this.pickCluster(app);
  }

  /** Gateway API mode: the rule's RequestRedirect answers the request (no backend, nothing forwarded). */
  redirect(rule: GwRule): void {
    const url = this.req.url ?? '/';
    const q = url.indexOf('?');
    const location = redirectLocation(rule.redirect!, rule, {
      scheme: 'http',
      host: hostOf(this.info.host || null),
      path: url.slice(0, q === -1 ? url.length : q).split('#')[0] || '/',
      query: q === -1 ? '' : url.slice(q + 1).split('#')[0]!,
    });
    const status = rule.redirect!.statusCode;
    this.res.writeHead(status, ['location', location, 'content-length', '0', 'x-request-id', this.info.requestId]);
    this.res.end();
    this.finish(status, '');
  }

  // ── pickCluster ────────────────────────────────────────────────────────
  pickCluster(app: AppRoute): void {
    let key: string | null = null;
    if (app.sticky !== null) {
      key = app.sticky.kind === 'header' ? this.info.stickyValue : stickyKeyFromCookieHeader(this.info.cookie ?? undefined, app.sticky.name);
      if (key !== null) key = key.trim();
      if (key === '') key = null;
    }
    const i = pickCluster(app.split, splitPoint(key, this.proxy.deps.random()));
    let target = app.targets[i];
    // Runs in the same turn as receive: the start time is now.
    const now = this.startMs;
    if (target === undefined || !target.cluster.isServing(now)) {
      // The chosen cluster cannot take it: that counts against it for rollout gates
      // (a target that is down must fail its step), then fail over to another
      // cluster that serves the app (keeps serving while one side is down).
      target?.stats.record({ upstreamError: true, latencyMs: 0, ttfbMs: null, shed: false });
      const alt = app.targets.find((t) => t !== target && t.serveApp !== null && t.cluster.isServing(now));
      if (alt === undefined) {
        const t = target ?? app.targets[0]!;
        this.target = t;
        this.fail('NO_HEALTHY_UPSTREAM', noHealthyText(app.name, t.cluster.name));
        return;
      }
      target = alt;
    }
    this.target = target;
    this.readBody();
  }

  // ── readBody ───────────────────────────────────────────────────────────
  /**
   * A body small enough to buffer (content-length ≤ upstream.buffer_body_bytes)
   * is read whole before admission: a client slow to send it holds no slot,
   * only its connection (bounded by server.request_timeout). Larger or chunked
   * bodies stream to Serve after admission.
   */
  readBody(): void {
    const len = this.info.contentLength;
    if (!this.info.chunked && len <= 0) {
      this.admit(this.target!);
      return;
    }
    const cfg = this.snap!.config.upstream;
    if (this.info.chunked || len > cfg.bufferBodyBytes) {
      this.admit(this.target!);
      return;
    }
    this.maybeContinue();
    this.bodyChunks = [];
    const req = this.req;
    if (req instanceof H1Request) req.readBody(this);
    else if (req instanceof GatewayRequest) {
      req.ctx = this;
      req.on('data', onBodyData);
      req.on('end', onBodyEnd);
    } else {
      const r = req as IncomingMessage;
      r.on('data', (c: Buffer) => this.bodyChunks!.push(c));
      r.once('end', () => this.bodyRead());
    }
  }

  // BodySink (the lean server's buffered body)
  onBodyChunk(chunk: Buffer): void {
    if (this.bodyChunks !== null) this.bodyChunks.push(chunk);
  }

  onBodyEnd(): void {
    if (this.bodyChunks !== null) this.bodyRead();
  }

  bodyRead(): void {
    if (this.done) return;
    const chunks = this.bodyChunks!;
    this.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    this.bodyChunks = null;
    this.admit(this.target!);
  }

  // ── admit ──────────────────────────────────────────────────────────────
  admit(target: AppTarget): void {
    const r = target.limiter.acquire(this);
    if (r === 'granted') {
      this.onAdmitted();
      return;
    }
    if (r === 'queued') return;
    // Queue full: spill over to another cluster serving the app with a free slot, if allowed.
    const app = this.app!;
    if (app.spillover) {
      const now = this.proxy.deps.clock.now();
      for (const alt of app.targets) {
        if (alt === target || alt.serveApp === null || !alt.cluster.isServing(now)) continue;
        if (alt.limiter.tryAcquire()) {
          this.target = alt;
          this.onAdmitted();
          return;
        }
      }
    }
    this.proxy.deps.metrics.rejections.labels(app.name, target.cluster.name, 'queue_full').inc();
    this.fail('QUEUE_FULL', queueFullText(target.limiter.queued, target.limiter.queueCapacity));
  }

  onAdmitted(): void {
    this.permit = true;
    if (this.clientGone) {
      this.finish(499, DC);
      return;
    }
    if (this.body === null && (this.info.chunked || this.info.contentLength > 0)) {
      // Large or chunked: streamed to Serve (not replayable on retry).
      this.maybeContinue();
      const req = this.req;
      this.body = req instanceof H1Request ? req.bodyStream() : (req as IncomingMessage);
    }
    this.pickEndpoint();
  }

  onQueueTimeout(): void {
    const t = this.target!;
    this.proxy.deps.metrics.rejections.labels(this.app!.name, t.cluster.name, 'queue_timeout').inc();
    this.fail('QUEUE_TIMEOUT', queueTimeoutText(this.info.requestId, t.limiter.queueTimeoutMs / 1000));
  }

  /**
   * `Expect: 100-continue`: the 100 goes out when the gateway is ready for the
   * body, only if the body has not come anyway and this response is the one on
   * the connection now. A pipelined request's response waits in node:http's
   * queue (res.socket is null) and a 100 written there would land inside the
   * response before it; such a client sends its body after its own wait.
   */
  maybeContinue(): void {
    if (this.info.expectContinue && !this.req.complete && this.res.socket !== null) this.res.writeContinue();
  }

  get replayable(): boolean {
    return this.body === null || Buffer.isBuffer(this.body);
  }

  // ── pickEndpoint ───────────────────────────────────────────────────────
  pickEndpoint(): void {
    let target = this.target!;
    const now = this.proxy.deps.clock.now();
    let ep = target.cluster.pick(now, this.failedEndpoint);
    if (this.attempts > 0 && (ep === null || ep === this.failedEndpoint) && this.failOver(now)) {
      target = this.target!;
      ep = target.cluster.pick(now, null);
    }
    if (ep === null) {
      this.fail(this.attempts > 0 ? 'RETRY_LIMIT' : 'NO_HEALTHY_UPSTREAM', noHealthyText(this.app!.name, target.cluster.name));
      return;
    }
    this.endpoint = ep;
    ep.inFlight++;
    target.cluster.inFlight++;
    const conn = ep.acquire(this);
    if (conn === null) {
      this.waitingConn = true;
      return;
    }
    this.forward(conn);
  }

  /**
   * A retry with nowhere else to go in its cluster moves to another cluster
   * serving the app, if that one has a free slot now. The failure counts
   * against the first cluster for rollout gates.
   */
  failOver(now: number): boolean {
    const from = this.target!;
    for (const alt of this.app!.targets) {
      if (alt === from || alt.serveApp === null || !alt.cluster.isServing(now)) continue;
      if (!alt.limiter.tryAcquire()) continue;
      from.stats.record({ upstreamError: true, latencyMs: now - this.startMs, ttfbMs: null, shed: false });
      from.limiter.release();
      this.target = alt;
      this.failedEndpoint = null;
      return true;
    }
    return false;
  }

  onConnection(conn: UpstreamConnection): void {
    this.waitingConn = false;
    if (this.done) {
      conn.endpoint.release(conn, this.proxy.deps.clock.now());
      return;
    }
    this.forward(conn);
  }

  // ── forward ────────────────────────────────────────────────────────────
  forward(conn: UpstreamConnection): void {
    this.conn = conn;
    this.attempts++;
    this.reusedSocket = conn.reused;
    this.responseStarted = false;
    this.discard = false;
    conn.client.dispatch(
      {
        path: upstreamTarget(this.req.url ?? '/'),
        method: this.req.method as Dispatcher.HttpMethod,
        headers: this.headers,
        body: this.body,
        headersChecked: this.headersChecked,
      },
      this,
    );
  }

  // undici handler (legacy API: measured cheapest, node-floor.md §4)
  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.clientGone) abort();
  }

  /** rawHeaders: undici's Buffers, or the lean client's strings (upstream.client: lean). */
  onHeaders(statusCode: number, rawHeaders: Buffer[] | string[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    this.responseStarted = true;
    const target = this.target!;
    if (statusCode === 503 && this.retryAllowed('backpressure')) {
      // Serve never ran it (backpressure / deployment unavailable): swallow and retry elsewhere.
      this.discard = true;
      this.proxy.deps.metrics.upstreamAttempts.labels(target.cluster.name, 'backpressure').inc();
      return true;
    }
    this.ttfbMs = this.proxy.deps.clock.now() - this.startMs;
    const out: string[] = [];
    const rinfo: ResponseHeaderInfo = { hasRequestId: false, contentLength: -1, eventStream: false, hasDate: false };
    filterResponseHeaders(rawHeaders, out, rinfo);
    if (!rinfo.hasRequestId) out.push('x-request-id', this.info.requestId);
    if (this.snap!.config.serveClusterHeader) out.push('x-serve-cluster', target.cluster.name);
    this.status = statusCode;
    const res = this.res;
    if (res.destroyed) return false;
    // Every name and value here went through llhttp (undici's or the lean client's) or is the gateway's own.
    if (res instanceof H1Response) res.writeHeadParsed(statusCode, out);
    else res.writeHead(statusCode, out);
    this.afterHead(rinfo, resume);
    return true;
  }

  /**
   * onHeaders for a head the lean client hands over still in bytes: the same filtering and
   * additions, written by the lean server without making strings (H1Response.writeHeadRaw). Any
   * other case goes through the strings (onHeaders).
   */
  onRawHeaders(statusCode: number, raw: RawHead, resume: () => void): boolean {
    const res = this.res;
    if (statusCode === 503 || !(res instanceof H1Response) || res.destroyed) return this.onHeaders(statusCode, raw.headers(), resume);
    const rinfo = RINFO;
    rinfo.hasRequestId = false;
    rinfo.contentLength = -1;
    rinfo.eventStream = false;
    rinfo.hasDate = false;
    if (!filterRawResponseHead(raw, KEEP, rinfo)) return this.onHeaders(statusCode, raw.headers(), resume);
    const target = this.target!;
    const extra = EXTRA;
    extra.length = 0;
    if (!rinfo.hasRequestId) extra.push('x-request-id', this.info.requestId);
    if (this.snap!.config.serveClusterHeader) extra.push('x-serve-cluster', target.cluster.name);
    if (!res.writeHeadRaw(statusCode, raw, KEEP, rinfo, extra)) return this.onHeaders(statusCode, raw.headers(), resume);
    this.responseStarted = true;
    this.ttfbMs = this.proxy.deps.clock.now() - this.startMs;
    this.status = statusCode;
    this.afterHead(rinfo, resume);
    return true;
  }

  afterHead(rinfo: ResponseHeaderInfo, resume: () => void): void {
    if (rinfo.contentLength === -1 || rinfo.eventStream) {
      // Streams: headers go out in this tick, not with the first chunk whenever
      // that comes. If the first chunk arrived in the same read it is written
      // with them (one syscall); otherwise they are flushed on their own.
      this.headersPending = true;
      process.nextTick(flushPendingHeaders, this);
      this.streaming = true;
      this.target!.cluster.openStreams++;
    }
    this.resumeUpstream = resume;
  }

  onData(chunk: Buffer): boolean {
    if (this.discard) return true;
    this.headersPending = false;
    if (this.res.write(chunk)) return true;
    // The client is not reading as fast as Serve sends: pause the upstream until
    // it drains, for at most server.write_timeout (then the connection is closed
    // and the slot freed: a client that never reads cannot hold capacity).
    const res = this.res;
    // The lean server calls drained() itself.
    if (res instanceof GatewayResponse) res.once('drain', onResponseDrain);
    else if (!(res instanceof H1Response)) {
      if (this.onDrain === null) this.onDrain = () => this.drained();
      (res as ServerResponse).once('drain', this.onDrain);
    }
    const wt = this.snap!.config.server.writeTimeoutMs;
    if (wt > 0 && this.writeTimer === null) this.writeTimer = this.proxy.deps.clock.setTimeout(() => this.writeTimedOut(), wt);
    return false;
  }

  drained(): void {
    if (this.writeTimer !== null) {
      this.proxy.deps.clock.clearTimeout(this.writeTimer);
      this.writeTimer = null;
    }
    this.resumeUpstream?.();
  }

  writeTimedOut(): void {
    this.writeTimer = null;
    if (this.done) return;
    this.downstreamFault('DOWNSTREAM_TIMEOUT', ERRORS.DOWNSTREAM_TIMEOUT.status, 'Request timeout.');
  }

  /**
   * The client broke the protocol or a downstream limit: answer locally if
   * nothing was sent yet, close the connection (which aborts the upstream try
   * and frees the slot), and finish with the fault's status and flag.
   */
  downstreamFault(code: ErrorCode, status: number, text: string): void {
    if (this.done) return;
    const res = this.res;
    this.fault = code;
    this.faultStatus = res.headersSent ? this.status : status;
    if (!res.headersSent && !res.destroyed) {
      const body = Buffer.from(text);
      res.writeHead(status, ['content-type', 'text/plain; charset=utf-8', 'content-length', String(body.length), 'x-request-id', this.info.requestId || this.requestIdFromRaw(), 'x-gateway-flag', ERRORS[code].flag, 'connection', 'close']);
      res.end(body);
    }
    // Destroying the socket runs onClientClose: queued → cancelled, in flight → aborted.
    this.req.socket.destroy();
    if (!this.done && this.conn === null && !this.queued) this.finish(status, ERRORS[code].flag);
  }

  onComplete(): void {
    const conn = this.conn!;
    conn.requestsOnSocket++;
    recordSuccess(this.endpoint!.health);
    // One clock read for the connection's last use and the request's end.
    const now = this.proxy.deps.clock.now();
    this.releaseConnection(now);
    if (this.discard) {
      this.retryOrFail('backpressure');
      return;
    }
    this.target!.handles.attemptOk.n++;
    this.res.end();
    this.finish(this.status, '', now);
  }

  onError(err: Error & { code?: string }): void {
    this.releaseConnection();
    if (this.done) return;
    // Everything after this may dispatch again (a retry, or a queued request
    // admitted by the freed permit), which undici forbids while it is still
    // failing its queue: continue on the next tick.
    process.nextTick(handleUpstreamError, this, err);
  }

  handleUpstreamError(err: Error & { code?: string }): void {
    if (this.done) return;
    if (this.clientGone) {
      this.finish(499, DC);
      return;
    }
    if (err.code !== undefined && INVALID_REQUEST_CODES.has(err.code) && !this.res.headersSent) {
      this.leaveEndpoint();
      this.fail('BAD_REQUEST', `Bad request: ${err.message}.`);
      return;
    }
    const failure = classifyUpstreamError(err.code, this.reusedSocket, this.responseStarted);
    const cluster = this.target!.cluster.name;
    this.proxy.deps.metrics.upstreamAttempts.labels(cluster, failure).inc();
    if (failure === 'connect') recordFailure(this.endpoint!.health, this.proxy.deps.clock.now(), this.snap!.config.health);
    if (this.res.headersSent) {
      // Mid-stream failure: nothing sensible can be sent; cut the stream so the client sees it.
      this.res.destroy();
      this.finish(this.status, ERRORS[failure === 'timeout' ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_RESET'].flag);
      return;
    }
    this.retryOrFail(failure);
  }

  // ── onUpstreamError ────────────────────────────────────────────────────
  retryAllowed(failure: UpstreamFailure): boolean {
    const cfg = this.snap!.config.retry;
    const c = this.proxy.counters;
    return (
      decideRetry({
        failure,
        attempts: this.attempts,
        maxAttempts: cfg.maxAttempts,
        replayable: this.replayable,
        idempotent: this.body === null && IDEMPOTENT.has(this.req.method ?? ''),
        downstreamStarted: this.res.headersSent,
        activeRequests: c.activeRequests,
        activeRetries: c.activeRetries,
        budgetRatio: cfg.budgetRatio,
        // The budget is per data-plane thread (its own active requests): the floor is shared out.
        minRetryConcurrency: Math.ceil(cfg.minRetryConcurrency / this.snap!.config.workers),
      }) === 'retry'
    );
  }

  retryOrFail(failure: UpstreamFailure): void {
    const ep = this.endpoint!;
    this.leaveEndpoint();
    if (this.retryAllowed(failure)) {
      this.startRetry(failure, ep);
      return;
    }
    if (failure === 'backpressure') {
      this.fail('RETRY_LIMIT', 'Request dropped due to backpressure on every endpoint tried.');
      return;
    }
    const code = FAILURE_CODE[failure];
    const text =
      code === 'UPSTREAM_CONNECT_FAILED'
        ? `Could not connect to Serve endpoint ${ep.origin} (cluster '${ep.cluster}').`
        : code === 'UPSTREAM_TIMEOUT'
          ? `Serve endpoint ${ep.origin} did not answer in time.`
          : `Serve endpoint ${ep.origin} closed the connection before responding.`;
    this.fail(this.attempts > 1 && code === 'UPSTREAM_CONNECT_FAILED' ? 'RETRY_LIMIT' : code, text);
  }

  startRetry(failure: UpstreamFailure, failed: Endpoint): void {
    const counters = this.proxy.counters;
    if (failure !== 'stale_connection') {
      this.failedEndpoint = failed;
      if (!this.retrying) {
        this.retrying = true;
        counters.activeRetries++;
      }
    }
    this.proxy.deps.metrics.retries.labels(this.target!.cluster.name, failure).inc();
    // Not from inside undici's onComplete callback (a swallowed 503): dispatch on the next tick.
    process.nextTick(retryNextTick, this);
  }

  leaveEndpoint(): void {
    const ep = this.endpoint;
    if (ep === null) return;
    if (this.waitingConn) {
      ep.cancelWait(this);
      this.waitingConn = false;
    }
    ep.inFlight--;
    this.target!.cluster.inFlight--;
    if (this.streaming) {
      this.target!.cluster.openStreams--;
      this.streaming = false;
    }
    this.endpoint = null;
  }

  releaseConnection(now = this.proxy.deps.clock.now()): void {
    const conn = this.conn;
    if (conn === null) return;
    this.conn = null;
    this.abortUpstream = null;
    conn.endpoint.release(conn, now);
  }

  // ── client went away ───────────────────────────────────────────────────
  onClientClose(): void {
    if (this.done) return;
    // node:http detaches the socket from a finished exchange (null then).
    const sock = (this.req.socket ?? null) as (Socket & { [FAULT]?: FaultMark }) | null;
    const mark = sock === null ? undefined : sock[FAULT];
    if (mark !== undefined && this.fault === null) {
      this.fault = mark.code;
      this.faultStatus = mark.status === 0 ? this.status : mark.status;
    }
    // A response that went out whole is done (its finish comes from onComplete), unless a fault ends it.
    if (this.res.writableFinished && this.fault === null) return;
    this.clientGone = true;
    if (this.queued) {
      this.target!.limiter.cancel(this);
      this.finish(499, DC);
      return;
    }
    if (this.abortUpstream !== null) {
      // undici calls onError (aborted), which finishes with DC.
      this.abortUpstream();
      return;
    }
    if (this.conn === null) this.finish(499, DC);
  }

  // ── respond ────────────────────────────────────────────────────────────
  fail(code: ErrorCode, text: string): void {
    if (this.done) return;
    const status = sendLocalReply(this.res, code, text, this.info.requestId || this.requestIdFromRaw());
    this.finish(status, ERRORS[code].flag);
  }

  // ── finish: the single exit ────────────────────────────────────────────
  finish(status: number, flag: string, now = this.proxy.deps.clock.now()): void {
    if (this.done) return;
    this.done = true;
    if (this.fault !== null) {
      status = this.faultStatus;
      flag = ERRORS[this.fault].flag;
    }
    if (this.writeTimer !== null) {
      this.proxy.deps.clock.clearTimeout(this.writeTimer);
      this.writeTimer = null;
    }
    const deps = this.proxy.deps;
    const counters = this.proxy.counters;
    counters.activeRequests--;
    if (this.retrying) counters.activeRetries--;
    this.leaveEndpoint();
    this.releaseConnection(now);
    const target = this.target;
    if (this.permit && target !== null) {
      this.permit = false;
      target.limiter.release();
    }
    if (this.queued && target !== null) target.limiter.cancel(this);
    const durationMs = now - this.startMs;
    const app = this.app;
    const handles = target !== null && app !== null ? target.handles : deps.metrics.handles('', '');
    handles.countRequest(status, flag);
    handles.duration.observe(durationMs / 1000);
    if (this.ttfbMs >= 0) handles.ttfb.observe(this.ttfbMs / 1000);
    // A client's fault (malformed request, timeouts toward the client) says
    // nothing about the cluster: it is left out of the rollout gates entirely.
    if (target !== null && app !== null && this.fault === null && flag !== ERRORS.BAD_REQUEST.flag) {
      const shed = flag === ERRORS.QUEUE_FULL.flag || flag === ERRORS.QUEUE_TIMEOUT.flag;
      target.stats.record({
        upstreamError: !shed && flag !== DC && (status >= 500 || UPSTREAM_FLAGS.has(flag)),
        latencyMs: durationMs,
        ttfbMs: this.ttfbMs >= 0 ? this.ttfbMs : null,
        shed,
      });
    }
    const sample = this.snap?.config.accessLog.sampleRate ?? 1;
    if (flag !== '' || status >= 500 || sample >= 1 || deps.random() < sample) {
      deps.accessLog.log(this.info.requestId, this.req.method ?? '', this.req.url ?? '', app?.name ?? '', target?.cluster.name ?? '', status, flag, this.attempts, durationMs, this.ttfbMs);
    }
  }
}

// Shared listeners (no closure per request): `this` is the emitter, its ctx the request's context.
function onResponseClose(this: GatewayResponse): void {
  const ctx = this.ctx;
  if (ctx !== null) ctx.onClientClose();
}

function onResponseDrain(this: GatewayResponse): void {
  const ctx = this.ctx;
  if (ctx !== null) ctx.drained();
}

function onBodyData(this: GatewayRequest, chunk: Buffer): void {
  const ctx = this.ctx;
  if (ctx !== null && ctx.bodyChunks !== null) ctx.bodyChunks.push(chunk);
}

function onBodyEnd(this: GatewayRequest): void {
  const ctx = this.ctx;
  if (ctx !== null && ctx.bodyChunks !== null) ctx.bodyRead();
}

function flushPendingHeaders(ctx: RequestContext): void {
  if (!ctx.headersPending) return;
  ctx.headersPending = false;
  if (!ctx.res.destroyed) ctx.res.flushHeaders();
}

function handleUpstreamError(ctx: RequestContext, err: Error & { code?: string }): void {
  ctx.handleUpstreamError(err);
}

function retryNextTick(ctx: RequestContext): void {
  if (ctx.done) return;
  if (ctx.clientGone) {
    ctx.finish(499, DC);
    return;
  }
  ctx.pickEndpoint();
}

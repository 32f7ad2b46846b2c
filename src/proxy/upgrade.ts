// HTTP/1.1 upgrades (WebSockets, which Serve supports through FastAPI):
// routed, split and admitted like any request, then spliced byte for byte to
// one Serve proxy. The connection holds its admission slot for its whole life
// (Serve counts it as an ongoing request). No retry: a connect failure is
// answered 502, and once the upstream answered, its bytes are the client's.
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { ERRORS, type ErrorCode } from '../core/errors.ts';
import type { AppRoute, AppTarget } from '../control/snapshot.ts';
import { recordFailure } from '../health/outlier.ts';
import type { Waiter } from '../admission/limiter.ts';
import { matchRoute, routingPath } from '../routing/route-table.ts';
import { pickCluster, splitPoint, stickyKeyFromCookieHeader } from '../routing/traffic-split.ts';
import type { Endpoint } from '../upstream/endpoint.ts';
import { appendForwardingHeaders, filterRequestHeaders, newRequestHeaderInfo } from './headers.ts';
import { noHealthyText, notFoundText, queueFullText } from './local-reply.ts';
import type { ProxyDeps } from './pipeline.ts';

const HEAD_END = Buffer.from('\r\n\r\n');
/** Upgrades never queue, so their waiter is never called. */
const NOT_QUEUED: Waiter = { queueDeadlineMs: 0, queued: false, onAdmitted() {}, onQueueTimeout() {} };
const MAX_HEAD = 64 * 1024;

export class UpgradeHandler {
  readonly #deps: ProxyDeps;
  /** Close functions of live upgraded connections (node:http stops tracking upgraded sockets). */
  readonly #live = new Set<() => void>();
  /** Bound once: the node:http 'upgrade' listener. */
  readonly handle: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

  constructor(deps: ProxyDeps) {
    this.#deps = deps;
    this.handle = (req, socket, head) => this.#upgrade(req, socket, head);
  }

  get open(): number {
    return this.#live.size;
  }

  /** Ends every upgraded connection (end of a shutdown's grace period, or close()). */
  closeAll(): void {
    for (const close of [...this.#live]) close();
  }

  #upgrade(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const deps = this.#deps;
    const start = deps.clock.now();
    client.on('error', () => {});
    const snap = deps.store.current;
    const path = routingPath(req.url ?? '/');
    const app = snap === null ? null : matchRoute(snap.routes, path);
    const info = newRequestHeaderInfo();
    const headers: string[] = [];
    filterRequestHeaders(req.rawHeaders, headers, info, app?.stickyHeader ?? '');
    if (info.requestId === '') info.requestId = randomUUID();
    const fail = (code: ErrorCode, text: string, target: AppTarget | null) => {
      const spec = ERRORS[code];
      const body = Buffer.from(text);
      client.end(
        `HTTP/1.1 ${spec.status} ${statusText(spec.status)}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\n` +
          `x-request-id: ${info.requestId}\r\nx-gateway-flag: ${spec.flag}\r\n${spec.status === 503 ? 'retry-after: 1\r\n' : ''}connection: close\r\n\r\n${text}`,
      );
      this.#finish(app, target, start, spec.status, spec.flag, info.requestId, req);
    };
    if (snap === null || app === null) {
      fail(snap === null ? 'NO_HEALTHY_UPSTREAM' : 'NO_ROUTE', snap === null ? 'Gateway has no routing snapshot yet.' : notFoundText(path, info.host), null);
      return;
    }
    const now = deps.clock.now();
    const target = chooseTarget(app, info.stickyValue, info.cookie, deps.random(), now);
    if (target === null) {
      fail('NO_HEALTHY_UPSTREAM', noHealthyText(app.name, app.targets[0]?.cluster.name ?? ''), null);
      return;
    }
    const limiter = target.limiter;
    const endpoint = target.cluster.pick(now, null);
    if (endpoint === null) {
      fail('NO_HEALTHY_UPSTREAM', noHealthyText(app.name, target.cluster.name), target);
      return;
    }
    // Upgrades do not wait in the queue: a free slot now, or 503.
    if (limiter.inFlight >= limiter.limit || limiter.queued > 0 || limiter.acquire(NOT_QUEUED) !== 'granted') {
      deps.metrics.rejections.labels(app.name, target.cluster.name, 'queue_full').inc();
      fail('QUEUE_FULL', queueFullText(limiter.queued, limiter.queueCapacity), target);
      return;
    }
    endpoint.inFlight++;
    target.cluster.inFlight++;
    target.cluster.openStreams++;
    appendForwardingHeaders(headers, info, req.socket.remoteAddress ?? '', 'http');
    const upgrade = headerValue(req.rawHeaders, 'upgrade');
    headers.push('connection', 'upgrade', 'upgrade', upgrade);
    let status = 0;
    let done = false;
    const close = (flag: string) => {
      if (done) return;
      done = true;
      this.#live.delete(closeNow);
      limiter.release();
      endpoint.inFlight--;
      target.cluster.inFlight--;
      target.cluster.openStreams--;
      upstream.destroy();
      client.destroy();
      this.#finish(app, target, start, status === 0 ? ERRORS.DOWNSTREAM_ABORTED.status : status, flag, info.requestId, req);
    };
    const closeNow = () => close('');
    this.#live.add(closeNow);
    const upstream = dial(endpoint, snap.config.upstream.connectTimeoutMs);
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
      upstream.write(`${text}\r\n`);
      if (head.length > 0) upstream.write(head);
      client.pipe(upstream);
    });
    upstream.on('error', (err: Error & { code?: string }) => {
      if (status !== 0 || done) return close(status === 0 ? ERRORS.DOWNSTREAM_ABORTED.flag : '');
      if (err.code !== 'ECONNRESET') recordFailure(endpoint.health, deps.clock.now(), snap.config.health);
      const code: ErrorCode = err.code === 'ECONNRESET' ? 'UPSTREAM_RESET' : 'UPSTREAM_CONNECT_FAILED';
      done = true;
      this.#live.delete(closeNow);
      limiter.release();
      endpoint.inFlight--;
      target.cluster.inFlight--;
      target.cluster.openStreams--;
      fail(code, `Could not open the upgrade to Serve endpoint ${endpoint.origin} (cluster '${endpoint.cluster}').`, target);
    });
    // Copy the upstream's response head, adding our headers, then splice.
    let pending: Buffer | null = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      if (pending === null) return;
      pending = Buffer.concat([pending, chunk]);
      const end = pending.indexOf(HEAD_END);
      if (end === -1) {
        if (pending.length > MAX_HEAD) close(ERRORS.UPSTREAM_RESET.flag);
        return;
      }
      const headText = pending.subarray(0, end).toString('latin1');
      status = Number(headText.slice(9, 12)) || 502;
      let extra = '';
      if (!/\r\nx-request-id:/i.test(headText)) extra += `\r\nx-request-id: ${info.requestId}`;
      if (snap.config.serveClusterHeader) extra += `\r\nx-serve-cluster: ${target.cluster.name}`;
      client.write(headText + extra);
      client.write(pending.subarray(end));
      pending = null;
      upstream.pipe(client);
    });
    upstream.on('close', () => close(''));
    client.on('close', () => close(status === 0 ? ERRORS.DOWNSTREAM_ABORTED.flag : ''));
  }

  #finish(app: AppRoute | null, target: AppTarget | null, start: number, status: number, flag: string, requestId: string, req: IncomingMessage): void {
    const deps = this.#deps;
    const durationMs = deps.clock.now() - start;
    const handles = target !== null && app !== null ? target.handles : deps.metrics.handles('', '');
    handles.countRequest(status, flag);
    handles.duration.observe(durationMs / 1000);
    deps.accessLog.log(requestId, req.method ?? '', req.url ?? '', app?.name ?? '', target?.cluster.name ?? '', status, flag, 1, durationMs, -1);
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

function dial(endpoint: Endpoint, connectTimeoutMs: number): Socket {
  const u = new URL(endpoint.origin);
  const s = connect({ host: u.hostname, port: Number(u.port) });
  s.setNoDelay(true);
  s.setTimeout(connectTimeoutMs, () => s.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })));
  return s;
}

function headerValue(raw: readonly string[], name: string): string {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1]!;
  return '';
}

function statusText(status: number): string {
  return status === 404 ? 'Not Found' : status === 502 ? 'Bad Gateway' : status === 503 ? 'Service Unavailable' : 'Error';
}


// One Serve proxy address and its pooled keep-alive connections: a LIFO free
// list of undici Clients (one socket each, pipelining 1). LIFO keeps the
// warmest socket busy and lets the rest age out; there is no connection cap by
// default, so 1000 concurrent streams never queue inside the gateway.
// upstream.client: lean swaps undici's Client for H1Client (same dispatch,
// handler, events and error codes; src/upstream/h1-client.ts).
import { Client } from 'undici';
import type { UpstreamConfig } from '../config/types.ts';
import { newEndpointHealth, type EndpointHealth } from '../health/outlier.ts';
import { H1Client, type H1DispatchOptions, type H1Handler } from './h1-client.ts';

/** What the pipeline and the endpoint use of a pooled client: undici's Client or H1Client. */
export interface UpstreamClient {
  dispatch(opts: H1DispatchOptions, handler: H1Handler): boolean;
  destroy(): Promise<void>;
  on(event: 'connect' | 'disconnect' | 'connectionError', listener: (this: PooledClient) => void): unknown;
}

/** A pooled client (either kind) that knows its UpstreamConnection, so its listeners are shared functions. */
interface PooledClient {
  conn: unknown;
}

/** An undici Client with the `conn` slot. */
class PooledUndiciClient extends Client {
  conn: unknown = null;
}

function onClientConnect(this: PooledClient): void {
  const c = this.conn as UpstreamConnection | null;
  if (c === null) return;
  c.socketOpen = true;
  c.requestsOnSocket = 0;
}

function onClientDisconnect(this: PooledClient): void {
  const c = this.conn as UpstreamConnection | null;
  if (c === null) return;
  c.socketOpen = false;
  c.requestsOnSocket = 0;
}

function onClientConnectionError(this: PooledClient): void {
  const c = this.conn as UpstreamConnection | null;
  if (c !== null) c.socketOpen = false;
}

export class UpstreamConnection {
  readonly client: UpstreamClient;
  readonly endpoint: Endpoint;
  /** Requests completed on the current socket; >0 means the socket is reused. */
  requestsOnSocket = 0;
  socketOpen = false;
  lastUsedMs = 0;

  constructor(endpoint: Endpoint, client: UpstreamClient & PooledClient) {
    this.endpoint = endpoint;
    this.client = client;
    client.conn = this;
    client.on('connect', onClientConnect);
    client.on('disconnect', onClientDisconnect);
    client.on('connectionError', onClientConnectionError);
  }

  /** True when the next request would be written on a socket that already served one. */
  get reused(): boolean {
    return this.socketOpen && this.requestsOnSocket > 0;
  }
}

export interface ConnectionWaiter {
  onConnection(conn: UpstreamConnection): void;
}

export class Endpoint {
  readonly origin: string;
  readonly cluster: string;
  readonly health: EndpointHealth = newEndpointHealth();
  inFlight = 0;
  /** The cluster has weight 0 everywhere: connections close as their requests end. */
  draining = false;
  #free: UpstreamConnection[] = [];
  #total = 0;
  #waiters: ConnectionWaiter[] = [];
  #closed = false;
  readonly #cfg: UpstreamConfig;

  constructor(origin: string, cluster: string, cfg: UpstreamConfig) {
    this.origin = origin;
    this.cluster = cluster;
    this.#cfg = cfg;
  }

  get connections(): number {
    return this.#total;
  }

  get idleConnections(): number {
    return this.#free.length;
  }

  /** A connection now, or null when the cap is reached (the waiter is called later). */
  acquire(waiter: ConnectionWaiter): UpstreamConnection | null {
    const conn = this.#free.pop();
    if (conn !== undefined) return conn;
    const cap = this.#cfg.maxConnectionsPerEndpoint;
    if (cap === 0 || this.#total < cap) return this.#create();
    this.#waiters.push(waiter);
    return null;
  }

  /** Drops a waiter that no longer needs a connection. */
  cancelWait(waiter: ConnectionWaiter): void {
    const i = this.#waiters.indexOf(waiter);
    if (i !== -1) this.#waiters.splice(i, 1);
  }

  release(conn: UpstreamConnection, now: number): void {
    conn.lastUsedMs = now;
    if (this.#closed || (this.draining && this.#waiters.length === 0)) {
      this.#destroy(conn);
      return;
    }
    const w = this.#waiters.shift();
    if (w !== undefined) {
      w.onConnection(conn);
      return;
    }
    this.#free.push(conn);
  }

  /**
   * Closes idle connections: all of them when `all` (cluster drained), else
   * those beyond `keep` unused for longer than the idle timeout.
   */
  closeIdle(now: number, all: boolean, keep = 8): number {
    let closed = 0;
    if (all) {
      for (const c of this.#free.splice(0)) {
        this.#destroy(c);
        closed++;
      }
      return closed;
    }
    if (this.#free.length <= keep) return 0;
    const cutoff = now - this.#cfg.idleTimeoutMs;
    // The free list is LIFO: the oldest are at the bottom.
    let n = 0;
    while (n < this.#free.length - keep && this.#free[n]!.lastUsedMs < cutoff) n++;
    for (const c of this.#free.splice(0, n)) {
      this.#destroy(c);
      closed++;
    }
    return closed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const all = this.#free.splice(0);
    await Promise.all(all.map((c) => c.client.destroy().catch(() => {})));
    this.#total -= all.length;
  }

  #create(): UpstreamConnection {
    const cfg = this.#cfg;
    this.#total++;
    if (cfg.client === 'lean') {
      const lean = new H1Client(this.origin, {
        connectTimeout: cfg.connectTimeoutMs,
        headersTimeout: cfg.headersTimeoutMs,
        bodyTimeout: cfg.bodyTimeoutMs,
        keepAliveTimeout: cfg.idleTimeoutMs,
        keepAliveTimeoutThreshold: 1000,
        parser: cfg.parser,
      });
      return new UpstreamConnection(this, lean);
    }
    const client = new PooledUndiciClient(this.origin, {
      pipelining: 1,
      connectTimeout: cfg.connectTimeoutMs,
      headersTimeout: cfg.headersTimeoutMs,
      bodyTimeout: cfg.bodyTimeoutMs,
      keepAliveTimeout: cfg.idleTimeoutMs,
      keepAliveMaxTimeout: cfg.idleTimeoutMs,
      // uvicorn closes idle sockets at exactly keep_alive_timeout_s; close ours 1 s earlier if it tells us.
      keepAliveTimeoutThreshold: 1000,
      strictContentLength: true,
    });
    // undici's dispatch takes its own option and handler types; the pipeline passes what both accept.
    return new UpstreamConnection(this, client as unknown as UpstreamClient & PooledClient);
  }

  #destroy(conn: UpstreamConnection): void {
    this.#total--;
    conn.client.destroy().catch(() => {});
  }
}

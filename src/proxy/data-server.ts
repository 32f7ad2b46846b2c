// The data-plane listener: node:http (server.engine: node, the default) or the
// lean llhttp server (server.engine: lean, src/proxy/h1-server.ts), with the
// pipeline's request classes and the client-side limits (server.*,
// docs/security.md), shared by the main thread and every worker thread
// (src/workers/). With several threads each listens on the same port with
// SO_REUSEPORT and the kernel spreads new connections over them.
import { createServer } from 'node:http';
import type { AddressInfo, ListenOptions } from 'node:net';
import type { GatewayConfig } from '../config/types.ts';
import type { Instruments } from '../metrics/instruments.ts';
import { H1Server } from './h1-server.ts';
import { SERVER_CLASSES, type RequestPipeline } from './pipeline.ts';
import type { UpgradeHandler } from './upgrade.ts';

/** What the gateway uses of its data-plane server (node:http's Server and H1Server both have it). */
export interface DataServer {
  maxConnections: number;
  headersTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  listen(opts: ListenOptions, cb: () => void): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
  address(): AddressInfo | string | null;
  close(cb?: (err?: Error) => void): unknown;
  closeIdleConnections(): void;
  closeAllConnections(): void;
  /** Open client connections (async, as net.Server's). */
  getConnections(cb: (err: Error | null, count: number) => void): unknown;
}

export function createDataServer(proxy: RequestPipeline, upgrades: UpgradeHandler, metrics: Instruments, config: GatewayConfig): DataServer {
  if (config.server.engine === 'lean') {
    const lean = new H1Server({
      request: proxy.handle,
      upgrade: upgrades.handle,
      connect: (req, socket) => proxy.refuseConnect(req, socket),
      clientError: (code, socket, active) => proxy.clientFault(code, socket, active),
      drop: () => metrics.connectionsDropped.inc(),
    }, undefined, config.server.parser);
    applyServerLimits(lean, config);
    return lean;
  }
  // node:http checks the header and request timeouts every connectionsCheckingInterval.
  const server = createServer({ ...SERVER_CLASSES, connectionsCheckingInterval: 1000, requireHostHeader: true }, proxy.handle);
  applyServerLimits(server, config);
  server.on('checkContinue', proxy.handle);
  server.on('clientError', (err: Error & { code?: string }, socket) => proxy.clientError(err, socket));
  server.on('connect', (req, socket) => proxy.refuseConnect(req, socket));
  server.on('drop', () => metrics.connectionsDropped.inc());
  server.on('upgrade', upgrades.handle);
  return server;
}

/**
 * server.* onto the data-plane server (also on reload: these are live settings).
 * server.max_connections is for the process (file descriptors are): each of
 * the `workers` threads takes its share.
 */
export function applyServerLimits(server: DataServer, config: GatewayConfig): void {
  const s = config.server;
  server.maxConnections = Math.max(1, Math.floor(s.maxConnections / Math.max(1, config.workers)));
  server.headersTimeout = s.requestHeaderTimeoutMs;
  server.requestTimeout = s.requestTimeoutMs;
  server.keepAliveTimeout = s.idleTimeoutMs;
}

/** Listens; `reusePort` when other threads listen on the same port. */
export function listenData(server: DataServer, port: number, host: string, reusePort: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: 4096, reusePort }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

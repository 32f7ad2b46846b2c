// The only place the data plane turns a gateway outcome into an HTTP response.
// Texts follow Ray Serve's where Serve has one (serve.md §1.7), so clients see
// the same bodies whether Serve or the gateway answered.
import { ERRORS, type ErrorCode } from '../core/errors.ts';
import type { DownstreamResponse } from './downstream.ts';

export function notFoundText(path: string, host: string): string {
  return `Path '${path}' not found. Ping http://${host || 'localhost'}/-/routes for available routes.`;
}

export function queueFullText(queued: number, capacity: number): string {
  return `Request dropped due to backpressure (num_queued_requests=${queued}, max_queued_requests=${capacity}).`;
}

export function queueTimeoutText(requestId: string, seconds: number): string {
  return `Request ${requestId} dropped after waiting ${seconds}s for capacity (queue_timeout).`;
}

export function noHealthyText(app: string, cluster: string): string {
  return `No healthy Serve endpoint for application '${app}' on cluster '${cluster}'.`;
}

/** Sends a local reply; returns the status sent. Never throws on a closed socket. */
export function sendLocalReply(res: DownstreamResponse, code: ErrorCode, text: string, requestId: string): number {
  const spec = ERRORS[code];
  if (res.headersSent || res.destroyed) return spec.status;
  const body = Buffer.from(text, 'utf8');
  const headers: string[] = [
    'content-type', 'text/plain; charset=utf-8',
    'content-length', String(body.length),
    'x-request-id', requestId,
    'x-gateway-flag', spec.flag,
  ];
  if (spec.status === 503) headers.push('retry-after', '1');
  res.writeHead(spec.status, headers);
  res.end(body);
  return spec.status;
}

// The one table of gateway outcomes. Every local reply, access-log flag and
// metric label for a failure comes from here; docs/errors.md mirrors it and
// test/architecture.test.ts keeps the two in step.

export type ErrorSource = 'downstream' | 'upstream' | 'internal';

export interface ErrorSpec {
  readonly status: number;
  readonly source: ErrorSource;
  readonly flag: string;
  readonly retryable: boolean;
  readonly summary: string;
}

export const ERRORS = {
  NO_ROUTE: { status: 404, source: 'downstream', flag: 'NR', retryable: false, summary: 'no Serve route_prefix matches the path' },
  QUEUE_FULL: { status: 503, source: 'internal', flag: 'QF', retryable: false, summary: 'admission queue for the app on the chosen cluster is full' },
  QUEUE_TIMEOUT: { status: 503, source: 'internal', flag: 'QT', retryable: false, summary: 'request waited in the admission queue past queue_timeout' },
  BACKEND_INVALID: { status: 500, source: 'internal', flag: 'BI', retryable: false, summary: 'Gateway API mode: the HTTPRoute backendRef chosen by weight cannot be resolved (missing Service, other kind or namespace), or the rule has no usable backendRef' },
  NO_HEALTHY_UPSTREAM: { status: 503, source: 'upstream', flag: 'UH', retryable: false, summary: 'no healthy endpoint in the chosen cluster (or its circuit is open)' },
  UPSTREAM_CONNECT_FAILED: { status: 502, source: 'upstream', flag: 'UF', retryable: true, summary: 'could not connect to the endpoint' },
  UPSTREAM_TIMEOUT: { status: 504, source: 'upstream', flag: 'UT', retryable: false, summary: 'endpoint did not send response headers in time' },
  UPSTREAM_RESET: { status: 502, source: 'upstream', flag: 'UR', retryable: false, summary: 'endpoint reset or closed the connection' },
  RETRY_LIMIT: { status: 503, source: 'upstream', flag: 'URX', retryable: false, summary: 'every allowed attempt failed before reaching the application' },
  BAD_REQUEST: { status: 400, source: 'downstream', flag: 'BR', retryable: false, summary: 'malformed request refused by the gateway (framing, duplicate Host, request target, a header that cannot be forwarded)' },
  METHOD_NOT_ALLOWED: { status: 405, source: 'downstream', flag: 'MA', retryable: false, summary: 'CONNECT (and other methods the gateway never forwards)' },
  DOWNSTREAM_TIMEOUT: { status: 408, source: 'downstream', flag: 'DT', retryable: false, summary: 'client did not send its request in time, or did not read the response within server.write_timeout' },
  DOWNSTREAM_ABORTED: { status: 499, source: 'downstream', flag: 'DC', retryable: false, summary: 'client disconnected before the response completed (logged only)' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

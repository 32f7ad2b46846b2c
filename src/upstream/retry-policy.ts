// When may a failed try be sent again? Only when nothing reached a Serve
// application (SPEC §5 Retries). [pure]

export type UpstreamFailure =
  /** TCP connect failed or timed out: nothing was sent. */
  | 'connect'
  /** A reused keep-alive socket was closed under us before any response byte (Serve idle close race). */
  | 'stale_connection'
  /** Serve answered 503 before running the request (backpressure / deployment unavailable). */
  | 'backpressure'
  /** Reset or close after the request was written: it may have run. */
  | 'reset'
  | 'timeout';

export interface RetryInput {
  readonly failure: UpstreamFailure;
  /** Tries made so far, including the failed one. */
  readonly attempts: number;
  readonly maxAttempts: number;
  /** The request body can be sent again (none, or buffered). */
  readonly replayable: boolean;
  /** An idempotent method (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) with no body. */
  readonly idempotent: boolean;
  /** Response bytes already went downstream. */
  readonly downstreamStarted: boolean;
  readonly activeRequests: number;
  readonly activeRetries: number;
  readonly budgetRatio: number;
  readonly minRetryConcurrency: number;
}

export type RetryDecision = 'retry' | 'fail';

export function decideRetry(i: RetryInput): RetryDecision {
  if (i.downstreamStarted || !i.replayable) return 'fail';
  if (i.failure === 'reset' || i.failure === 'timeout') return 'fail';
  if (i.attempts >= i.maxAttempts) return 'fail';
  // A pooled socket that failed before any response byte: the request was
  // written, so Serve may have run it (it cannot be told apart from Serve
  // closing an idle socket under us). Sent again only when that is harmless,
  // an idempotent method without a body; outside the budget (it is our socket
  // that went stale, not the upstream that is failing).
  if (i.failure === 'stale_connection') return i.idempotent ? 'retry' : 'fail';
  const budget = Math.max(i.minRetryConcurrency, Math.floor(i.activeRequests * i.budgetRatio));
  return i.activeRetries < budget ? 'retry' : 'fail';
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'ECONNABORTED',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** Classifies an undici/net error from one try. */
export function classifyUpstreamError(code: string | undefined, reusedSocket: boolean, responseStarted: boolean): UpstreamFailure {
  if (code !== undefined && CONNECT_CODES.has(code)) return 'connect';
  if (code !== undefined && TIMEOUT_CODES.has(code)) return 'timeout';
  if (reusedSocket && !responseStarted) return 'stale_connection';
  return 'reset';
}

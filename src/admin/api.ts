// The admin API (SPEC §7) on its own port: health, readiness, metrics, status,
// traffic control, audit events, and the operator dashboard. The only place
// (with proxy/local-reply.ts) that turns errors into HTTP. Reads are open on
// loopback; every mutating call needs the bearer token (401 without, 403
// wrong), compared in constant time. Errors: {"error": {"code", "message"}}.
//
// DNS rebinding: a web page whose host name is re-pointed at 127.0.0.1 can
// make the browser send requests to this port, from loopback, with the
// page's own name in Host. So every request must name this server in Host
// (hostAllowed): localhost, a loopback literal, the admin listen address,
// admin.allowed_hosts, or, when listening on all interfaces, any IP literal
// (kubelet and Prometheus use the pod IP). Others get 421 HOST_NOT_ALLOWED.
// /healthz and /readyz tell nothing worth stealing and are never refused.
//
// CSRF: the token travels only in the Authorization header (never a cookie or
// a URL), which a page of another site cannot make a browser send: no CORS
// header is ever served, so a cross-site fetch carrying it fails its preflight.
// On top of that a mutating call whose Origin header (browsers send one on
// every cross-origin POST/PUT) names another host than Host is refused with
// 403 CROSS_ORIGIN, before the token is checked.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { Gateway } from '../main.ts';
import { buildSeries, buildStatus, rolloutJson } from './status.ts';
import type { AuditAction } from '../control/traffic-state.ts';
import { isRolloutActive, type RolloutState } from '../control/rollout.ts';
import { parseDuration } from '../config/schema.ts';

export interface AdminOptions {
  readonly host: string;
  readonly port: number;
  /** null: no token configured, so every mutating call is refused. */
  readonly token: string | null;
}

export interface AdminServer {
  readonly url: string;
  close(): Promise<void>;
}

const weightsSchema = {
  type: 'object',
  required: ['weights'],
  additionalProperties: false,
  properties: {
    weights: { type: 'object', minProperties: 1, additionalProperties: { type: 'integer', minimum: 0, maximum: 100 } },
    force: { type: 'boolean' },
    reason: { type: 'string', maxLength: 500 },
  },
} as const;

const rolloutSchema = {
  type: 'object',
  required: ['to'],
  additionalProperties: false,
  properties: {
    to: { type: 'string', minLength: 1 },
    steps: { type: 'array', minItems: 1, maxItems: 100, items: { type: 'integer', minimum: 1, maximum: 100 } },
    interval: { type: ['string', 'number'] },
    max_error_rate: { type: 'number', minimum: 0, maximum: 1 },
    max_p99_latency: { type: ['string', 'number'] },
    max_ttfb_p99: { type: ['string', 'number', 'null'] },
    min_requests: { type: 'integer', minimum: 0 },
    on_failure: { enum: ['rollback', 'pause'] },
    force: { type: 'boolean' },
  },
} as const;

/** Fastify's internal error codes, as the stable codes this API documents. */
const FASTIFY_CODES: Readonly<Record<string, string>> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_BODY',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
};

/** pause / resume / promote / rollback: no body, or `{"force": true}` (promote and resume pass the readiness gate). */
const actionSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { force: { type: 'boolean' } },
} as const;

const DASHBOARD_HTML = readFileSync(new URL('./ui/index.html', import.meta.url), 'utf8');
/**
 * The page may run its own inline script (by hash) and talk to this server
 * only: no external asset, no other origin, no framing, no form posts.
 */
const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${[...DASHBOARD_HTML.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`).join(' ')}`,
  "style-src 'unsafe-inline'",
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export async function startAdmin(gw: Gateway, opts: AdminOptions): Promise<AdminServer> {
  // Strict bodies: fastify's default Ajv silently drops unknown keys (removeAdditional) and coerces
  // types; a typo such as "forse": true must be refused with a reason, not ignored.
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    ajv: { customOptions: { allowUnionTypes: true, removeAdditional: false, coerceTypes: false } },
  });
  const tokenDigest = opts.token === null || opts.token === '' ? null : createHash('sha256').update(opts.token).digest();

  // JSON bodies: an empty body is no body (so `POST …/rollout/pause` with a JSON content type and
  // nothing in it works, and a body-less PUT fails schema validation with a reason); bad JSON is a
  // 400 INVALID_JSON rather than fastify's internal error code.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text) as unknown);
    } catch (err) {
      done(Object.assign(new Error(`body is not valid JSON: ${(err as Error).message}`), { statusCode: 400, code: 'INVALID_JSON' }), undefined);
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown; code?: string }, _req, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    const code =
      err.validation !== undefined
        ? 'INVALID_BODY'
        : status === 500
          ? 'INTERNAL'
          : err.code === undefined
            ? 'BAD_REQUEST'
            : (FASTIFY_CODES[err.code] ?? (err.code.startsWith('FST_') ? 'BAD_REQUEST' : err.code));
    // A token holder's call refused before its handler (bad JSON, schema): audited like any refusal.
    if (status < 500) auditApiRefusal(_req, status, code, err.message);
    void reply.code(status).send({ error: { code, message: err.message } });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no admin route ${req.method} ${req.url}` } });
  });

  const fail = (reply: FastifyReply, status: number, code: string, message: string) =>
    reply.code(status).send({ error: { code, message } });

  /** The audit action of a mutating traffic route, or null (reload, reads). */
  const auditActionOf = (req: FastifyRequest): AuditAction | null => {
    const url = req.routeOptions.url ?? '';
    if (url === '/api/v1/apps/:app/weights') return 'set_weights';
    if (url === '/api/v1/apps/:app/rollout') return 'rollout_start';
    const action = (req.params as { action?: string } | undefined)?.action;
    if (url === '/api/v1/apps/:app/rollout/:action' && (action === 'pause' || action === 'resume' || action === 'promote' || action === 'rollback')) {
      return `rollout_${action}`;
    }
    return null;
  };
  /** Audits a refusal the API itself decided, when the caller holds the token. */
  const auditApiRefusal = (req: FastifyRequest, status: number, code: string, message: string) => {
    const action = auditActionOf(req);
    const app = (req.params as { app?: string } | undefined)?.app;
    if (action === null || app === undefined || !tokenHolders.has(req)) return;
    gw.traffic.auditRefusal(app, action, status, code, message, actor(req));
  };
  /** Refuses a token holder's call with a reason and audits it. */
  const refuseAudited = (req: FastifyRequest, reply: FastifyReply, status: number, code: string, message: string) => {
    auditApiRefusal(req, status, code, message);
    return fail(reply, status, code, message);
  };
  /** A rollout as the API shows it (snake_case, gate values), or null. */
  const rolloutOut = (r: RolloutState | null) =>
    r === null ? null : rolloutJson(r, gw.reconciler.stats.snapshotFor(r.app, r.pendingCluster), gw.clock.wallNow());

  // First hook of every request (before the token check and body parsing).
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?', 1)[0];
    if (path === '/healthz' || path === '/readyz') return undefined;
    const host = req.headers.host;
    if (host === undefined || hostAllowed(host, opts.host, gw.config.admin.allowedHosts ?? [])) return undefined;
    return fail(
      reply,
      421,
      'HOST_NOT_ALLOWED',
      `Host ${JSON.stringify(host.slice(0, 100))} is not a name of this admin server (DNS rebinding protection); use localhost or the admin address, or add the name to admin.allowed_hosts`,
    );
  });

  /** Mutating calls that passed the token check: their refusals are audited (authenticated callers only). */
  const tokenHolders = new WeakSet<FastifyRequest>();

  /** Bearer check; returns false after replying when the caller may not proceed. */
  const authorized = (req: FastifyRequest, reply: FastifyReply, mutating: boolean): boolean => {
    if (mutating && !sameOrigin(req.headers.origin, req.headers.host)) {
      void fail(reply, 403, 'CROSS_ORIGIN', `Origin ${JSON.stringify(String(req.headers.origin).slice(0, 100))} is not this admin server; mutating calls come from its own dashboard or a non-browser client`);
      return false;
    }
    if (!mutating && isLoopback(req.socket.remoteAddress)) return true;
    if (tokenDigest === null) {
      void fail(reply, 403, 'TOKEN_NOT_CONFIGURED', `set the admin token in $${gw.config.admin.tokenEnv} to allow this call`);
      return false;
    }
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Bearer ')) {
      void fail(reply, 401, 'UNAUTHORIZED', 'missing "Authorization: Bearer <token>"');
      return false;
    }
    const given = createHash('sha256').update(header.slice(7)).digest();
    if (!timingSafeEqual(given, tokenDigest)) {
      void fail(reply, 403, 'FORBIDDEN', 'wrong admin token');
      return false;
    }
    if (mutating) tokenHolders.add(req);
    return true;
  };
  /**
   * onRequest hook of every mutating route: the token is checked before the body is
   * parsed or validated, so an unauthenticated caller gets 401/403 and learns nothing else.
   */
  const requireToken = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!authorized(req, reply, true)) return reply;
    return undefined;
  };
  const actor = (req: FastifyRequest) => {
    const who = req.headers['x-actor'];
    return `admin${typeof who === 'string' && who !== '' ? `:${who.slice(0, 64)}` : ''}@${req.socket.remoteAddress ?? '?'}`;
  };

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    // Ready once a snapshot with routes exists (an empty route table serves nothing but 404s).
    const ready = gw.reconciler.current !== null && gw.reconciler.current.apps.size > 0 && !gw.draining;
    return reply.code(ready ? 200 : 503).send({ ready, draining: gw.draining, snapshot_version: gw.reconciler.current?.version ?? 0 });
  });
  app.get('/metrics', async (req, reply) => {
    if (!authorized(req, reply, false)) return reply;
    await gw.workers?.refresh();
    const body = await gw.metrics.registry.metrics();
    return reply.type(gw.metrics.registry.contentType).send(body);
  });
  // The page holds no data (it reads the API with the token the operator enters), so it is
  // served to anyone with an allowed Host: off loopback it is where the token gets entered.
  app.get('/', async (_req, reply) => {
    return reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', DASHBOARD_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-store')
      .send(DASHBOARD_HTML);
  });
  app.get('/api/v1/status', async (req, reply) => {
    if (!authorized(req, reply, false)) return reply;
    await gw.workers?.refresh();
    return buildStatus(gw);
  });
  app.get('/api/v1/series', async (req, reply) => {
    if (!authorized(req, reply, false)) return reply;
    return buildSeries(gw);
  });
  app.get<{ Querystring: { limit?: string } }>('/api/v1/events', async (req, reply) => {
    if (!authorized(req, reply, false)) return reply;
    const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) return fail(reply, 400, 'INVALID_LIMIT', 'limit must be an integer 1..10000');
    return { events: gw.traffic.events(limit) };
  });

  app.put<{ Params: { app: string }; Body: { weights: Record<string, number>; force?: boolean; reason?: string } }>(
    '/api/v1/apps/:app/weights',
    { onRequest: requireToken, schema: { body: weightsSchema } },
    async (req, reply) => {
      // Kubernetes mode: roles (active, pending, previous) stand for the RayService's clusters.
      const weights: Record<string, number> = {};
      for (const [k, w] of Object.entries(req.body.weights)) {
        const name = gw.resolveCluster(req.params.app, k);
        if (name === null) return refuseAudited(req, reply, 400, 'UNKNOWN_CLUSTER', `no cluster has the role "${k}" for app "${req.params.app}" now`);
        weights[name] = (weights[name] ?? 0) + w;
      }
      const r = await gw.traffic.setWeights(req.params.app, weights, {
        force: req.body.force ?? false,
        actor: actor(req),
        ...(req.body.reason !== undefined ? { reason: req.body.reason } : {}),
      });
      if (!r.ok) return fail(reply, r.status, r.code, r.message);
      // Only a rollout that still runs is news here; a finished one is history (GET status, events).
      return { app: req.params.app, weights: r.weights, rollout: isRolloutActive(r.rollout) ? rolloutOut(r.rollout) : null };
    },
  );

  app.post<{ Params: { app: string }; Body: Record<string, unknown> & { to: string } }>(
    '/api/v1/apps/:app/rollout',
    { onRequest: requireToken, schema: { body: rolloutSchema } },
    async (req, reply) => {
      const b = req.body;
      const dur = (key: string): number | undefined | null | Error => {
        const v = b[key];
        if (v === undefined) return undefined;
        if (v === null) return null;
        const ms = parseDuration(v);
        return ms === null ? new Error(`${key}: not a duration (e.g. "30s")`) : ms;
      };
      const interval = dur('interval');
      const p99 = dur('max_p99_latency');
      const ttfb = dur('max_ttfb_p99');
      for (const d of [interval, p99, ttfb]) if (d instanceof Error) return refuseAudited(req, reply, 400, 'INVALID_BODY', d.message);
      const to = gw.resolveCluster(req.params.app, b.to);
      if (to === null) return refuseAudited(req, reply, 400, 'UNKNOWN_CLUSTER', `no cluster has the role "${b.to}" for app "${req.params.app}" now`);
      const r = await gw.traffic.startRollout(
        req.params.app,
        {
          to,
          ...(b['steps'] !== undefined ? { steps: b['steps'] as number[] } : {}),
          ...(typeof interval === 'number' ? { intervalMs: interval } : {}),
          ...(typeof b['max_error_rate'] === 'number' ? { maxErrorRate: b['max_error_rate'] } : {}),
          ...(typeof p99 === 'number' ? { maxP99LatencyMs: p99 } : {}),
          ...(ttfb !== undefined ? { maxTtfbP99Ms: ttfb as number | null } : {}),
          ...(typeof b['min_requests'] === 'number' ? { minRequests: b['min_requests'] } : {}),
          ...(b['on_failure'] !== undefined ? { onFailure: b['on_failure'] as 'rollback' | 'pause' } : {}),
          force: b['force'] === true,
        },
        actor(req),
      );
      if (!r.ok) return fail(reply, r.status, r.code, r.message);
      return reply.code(201).send({ app: req.params.app, weights: r.weights, rollout: rolloutOut(r.rollout) });
    },
  );

  app.post<{ Params: { app: string; action: string }; Body: { force?: boolean } | undefined }>(
    '/api/v1/apps/:app/rollout/:action',
    {
      onRequest: requireToken,
      // No body at all is the usual call: validate it as {}.
      preValidation: async (req) => {
        if (req.body === undefined || req.body === null) req.body = {};
      },
      schema: { body: actionSchema },
    },
    async (req, reply) => {
      const action = req.params.action;
      if (action !== 'pause' && action !== 'resume' && action !== 'promote' && action !== 'rollback') {
        return fail(reply, 404, 'UNKNOWN_ACTION', `rollout action must be pause, resume, promote or rollback (got "${action}")`);
      }
      const r = await gw.traffic.controlRollout(req.params.app, action, actor(req), { force: req.body?.force === true });
      if (!r.ok) return fail(reply, r.status, r.code, r.message);
      return { app: req.params.app, weights: r.weights, rollout: rolloutOut(r.rollout) };
    },
  );

  app.post('/api/v1/reload', { onRequest: requireToken }, async (_req, reply) => {
    const r = await gw.reload('admin API');
    return reply.code(r.ok ? 200 : 422).send(r.ok ? { reloaded: true } : { error: { code: 'CONFIG_INVALID', message: r.error } });
  });

  await app.listen({ host: opts.host, port: opts.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port;
  const host = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;
  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, close: () => app.close() };
}

const LOOPBACK_NAMES: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '::1']);

/**
 * True when the Host header names this admin server: localhost or a loopback
 * literal, the listen address, a name from admin.allowed_hosts, or, when
 * listening on all interfaces (0.0.0.0, ::), any IP literal. A name from a
 * DNS-rebinding page is none of these. Case and a trailing dot are ignored.
 */
export function hostAllowed(hostHeader: string, listenHost: string, allowed: readonly string[]): boolean {
  const h = hostHeader.trim().toLowerCase();
  let name: string;
  let v6 = false;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end === -1) return false;
    name = h.slice(1, end);
    v6 = true;
  } else {
    const colon = h.lastIndexOf(':');
    name = colon === -1 ? h : h.slice(0, colon);
    if (colon !== -1 && !/^\d{0,5}$/.test(h.slice(colon + 1))) return false;
    if (name.endsWith('.')) name = name.slice(0, -1);
  }
  if (name === '') return false;
  if (LOOPBACK_NAMES.has(name)) return true;
  const listen = listenHost.toLowerCase();
  if (name === listen || allowed.includes(name)) return true;
  const wildcard = listen === '0.0.0.0' || listen === '::' || listen === '';
  return wildcard && (v6 ? /^[0-9a-f:.]+$/.test(name) : isIPv4(name));
}

function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

/**
 * True when a request's Origin (absent from non-browser clients and same-origin
 * GETs) names the server the Host header names: scheme and host:port must match
 * what the browser used to reach this admin port.
 */
export function sameOrigin(origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return true;
  if (host === undefined || origin === 'null') return false;
  try {
    return new URL(origin).host === new URL(`http://${host}`).host;
  } catch {
    return false;
  }
}

function isLoopback(addr: string | undefined): boolean {
  return addr !== undefined && (addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.'));
}

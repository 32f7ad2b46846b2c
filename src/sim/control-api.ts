// The sim's control API (fault switches and stats), JSON in and out, errors
// as {"error": {"code", "message"}}. docs/simulator.md lists the routes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HostPort } from '../config/types.ts';
import { SimServer } from './sim-server.ts';
import { SimError } from './sim-cluster.ts';
import type { ClusterStats, SimCluster } from './sim-cluster.ts';

/** What the control API drives. */
export interface ControlTarget {
  cluster(name: string): SimCluster;
  stats(): { clusters: Record<string, ClusterStats> };
  reset(): void;
}

const MAX_BODY = 64 * 1024;

export class ControlApi extends SimServer {
  readonly target: ControlTarget;

  constructor(target: ControlTarget, address: HostPort) {
    super(address);
    this.target = target;
  }

  protected serve(req: IncomingMessage, res: ServerResponse): void {
    this.#handle(req, res).catch((err: unknown) => {
      if (err instanceof SimError) sendJson(res, err.status, { error: { code: codeFor(err.status), message: err.message } });
      else sendJson(res, 500, { error: { code: 'internal', message: (err as Error).message } });
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const parts = (q < 0 ? url : url.slice(0, q)).split('/').filter((s) => s !== '').map(decodeURIComponent);
    const method = req.method ?? 'GET';
    const body = await readJson(req);
    const t = this.target;
    const ok = (extra: Record<string, unknown> = {}): void => sendJson(res, 200, { ok: true, ...extra });

    if (method === 'GET' && parts.length === 0) return sendJson(res, 200, { routes: ROUTES });
    if (method === 'GET' && parts.length === 1 && parts[0] === 'clusters') return sendJson(res, 200, t.stats());
    if (method === 'POST' && parts.length === 1 && parts[0] === 'reset') {
      t.reset();
      return ok();
    }
    if (parts[0] !== 'clusters' || parts[1] === undefined) throw new SimError(404, `no such route: ${method} ${url}`);
    const c = t.cluster(parts[1]);
    if (method === 'GET' && parts.length === 2) return sendJson(res, 200, c.stats());
    if (method !== 'POST') throw new SimError(405, `${method} not allowed on ${url}`);
    const [, , kind, id, action] = parts;
    if (parts.length === 5 && kind === 'proxies' && id !== undefined) {
      if (!/^\d+$/.test(id)) throw new SimError(400, `proxy index must be a number, got "${id}"`);
      const i = Number(id);
      if (action === 'kill') await c.killProxy(i);
      else if (action === 'revive') await c.reviveProxy(i);
      else if (action === 'drain') c.drainProxy(i);
      else if (action === 'undrain') c.undrainProxy(i);
      else throw new SimError(404, `unknown proxy action "${action}" (kill, revive, drain, undrain)`);
      return ok();
    }
    if (parts.length === 4 && kind === 'dashboard') {
      if (id === 'stop') await c.stopDashboard();
      else if (id === 'start') await c.startDashboard();
      else throw new SimError(404, `unknown dashboard action "${id}" (stop, start)`);
      return ok();
    }
    if (parts.length === 5 && kind === 'apps' && id !== undefined) {
      if (action === 'faults') {
        const f = c.setFaults(id, {
          ...(body['error_rate'] !== undefined ? { errorRate: num(body['error_rate'], 'error_rate') } : {}),
          ...(body['latency_ms'] !== undefined ? { latencyMs: num(body['latency_ms'], 'latency_ms') } : {}),
          ...(body['status'] !== undefined ? { status: num(body['status'], 'status') } : {}),
        });
        return ok({ faults: { error_rate: f.errorRate, latency_ms: f.latencyMs, status: f.status } });
      }
      if (action === 'scale') {
        c.scale(id, num(body['replicas'], 'replicas'));
        return ok();
      }
      if (action === 'status') {
        if (typeof body['status'] !== 'string') throw new SimError(400, 'body needs "status" (a Serve ApplicationStatus)');
        c.setAppStatus(id, body['status']);
        return ok();
      }
      throw new SimError(404, `unknown app action "${action}" (faults, scale, status)`);
    }
    throw new SimError(404, `no such route: ${method} ${url}`);
  }
}

const ROUTES = [
  'GET /clusters',
  'GET /clusters/{name}',
  'POST /reset',
  'POST /clusters/{name}/proxies/{i}/kill|revive|drain|undrain',
  'POST /clusters/{name}/dashboard/stop|start',
  'POST /clusters/{name}/apps/{app}/faults {"error_rate","latency_ms","status"}',
  'POST /clusters/{name}/apps/{app}/scale {"replicas"}',
  'POST /clusters/{name}/apps/{app}/status {"status"}',
];

function num(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new SimError(400, `"${name}" must be a number`);
  return v;
}

function codeFor(status: number): string {
  if (status === 400) return 'bad_request';
  if (status === 404) return 'not_found';
  if (status === 405) return 'method_not_allowed';
  return 'error';
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new SimError(400, 'body too large');
    chunks.push(chunk);
  }
  if (size === 0) return {};
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new SimError(400, 'body is not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new SimError(400, 'body must be a JSON object');
  return doc as Record<string, unknown>;
}

function sendJson(res: ServerResponse, status: number, doc: unknown): void {
  if (res.headersSent) return;
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

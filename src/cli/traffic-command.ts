// `serve-gateway traffic …`: a thin client of the admin API (SPEC §3, §7).
// Exit codes: 0 done, 1 refused by the gateway, 2 usage error (the flag and
// its allowed values are named; a missing token names the variable to
// export), 3 admin API unreachable.
//
// It imports nothing of the gateway: printing a table must not load fastify,
// pino or the Kubernetes client (test/cli-usage.test.ts checks both this and
// that CLI_ROLLOUT_LIMITS equals control/rollout.ts ROLLOUT_LIMITS).
import { formatStatus } from './status-format.ts';

export { formatStatus };

const TOKEN_ENV = 'SERVE_GATEWAY_ADMIN_TOKEN';

const HELP = `Usage:
  serve-gateway traffic status [--watch] [--every 2s]
  serve-gateway traffic set APP CLUSTER=WEIGHT... [--force] [--reason TEXT]
  serve-gateway traffic rollout APP --to CLUSTER [--steps 5,25,50,100] [--interval 30s]
        [--max-error-rate 0.02] [--max-p99-latency 5s] [--max-ttfb-p99 2s] [--min-requests 50]
        [--on-failure rollback|pause] [--force]
  serve-gateway traffic pause|resume|promote|rollback APP [--force]
        (--force: promote / resume even when the target cluster is not ready)
  serve-gateway traffic move FROM TO [--rollout [rollout options]] [--force] [--reason TEXT]
        every app with weight on cluster FROM: its weight goes to TO (at once, or
        with --rollout as each app's progressive rollout); the RayService upgrade case
  serve-gateway traffic events [--limit N]
Durations: 500ms, 30s, 2m, 1h, or a bare number of seconds (as in the config file).
Options: --admin URL (default http://127.0.0.1:9901, or $SERVE_GATEWAY_ADMIN), --json.
Mutating commands need the admin token: export ${TOKEN_ENV}=<token>.
Exit codes: 0 ok, 1 refused, 2 usage, 3 admin API unreachable.
`;

/** The API's rollout policy bounds (control/rollout.ts ROLLOUT_LIMITS), checked here to name the flag. */
export const CLI_ROLLOUT_LIMITS = { maxIntervalMs: 86_400_000, maxLatencyMs: 3_600_000, maxMinRequests: 1_000_000 } as const;
const ROLLOUT_LIMITS = CLI_ROLLOUT_LIMITS;

class UsageError extends Error {}
class Unreachable extends Error {}

type FlagKind = 'bool' | 'text' | 'url';
/** Every flag: its kind. Values are checked where they are used (checkValue), naming the allowed range. */
const FLAG_KINDS: Readonly<Record<string, FlagKind>> = {
  admin: 'url',
  json: 'bool',
  help: 'bool',
  force: 'bool',
  watch: 'bool',
  rollout: 'bool',
  every: 'text',
  limit: 'text',
  reason: 'text',
  to: 'text',
  steps: 'text',
  interval: 'text',
  'max-error-rate': 'text',
  'max-p99-latency': 'text',
  'max-ttfb-p99': 'text',
  'min-requests': 'text',
  'on-failure': 'text',
};

const ROLLOUT_FLAGS = ['steps', 'interval', 'max-error-rate', 'max-p99-latency', 'max-ttfb-p99', 'min-requests', 'on-failure'];
/** Flags each subcommand takes (besides --admin, --json, --help): anything else is a usage error, never ignored. */
const COMMON_FLAGS = ['admin', 'json', 'help'];
const FLAGS_OF: Readonly<Record<string, readonly string[]>> = {
  status: ['watch', 'every'],
  events: ['limit'],
  set: ['force', 'reason'],
  rollout: ['to', ...ROLLOUT_FLAGS, 'force'],
  pause: [],
  resume: ['force'],
  promote: ['force'],
  rollback: [],
  move: ['rollout', ...ROLLOUT_FLAGS, 'force', 'reason'],
};
const MUTATING = new Set(['set', 'rollout', 'pause', 'resume', 'promote', 'rollback', 'move']);

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

function parse(args: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h') flags.set('help', true);
    else if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
      const kind = FLAG_KINDS[name];
      // Unknown: kept, so checkFlags can name the command and the options it takes.
      if (kind === undefined) flags.set(name, true);
      else if (eq !== -1) {
        if (kind === 'bool') throw new UsageError(`--${name} takes no value`);
        flags.set(name, a.slice(eq + 1));
      } else if (kind === 'bool') flags.set(name, true);
      else {
        const v = args[i + 1];
        if (v === undefined || (v.startsWith('--') && v.length > 2)) throw new UsageError(`--${name} needs a value`);
        flags.set(name, v);
        i++;
      }
    } else positional.push(a);
  }
  return { positional, flags };
}

function checkFlags(sub: string, flags: Map<string, string | true>): void {
  const allowed = FLAGS_OF[sub];
  if (allowed === undefined) throw new UsageError(`unknown traffic command "${sub}" (one of: ${Object.keys(FLAGS_OF).join(', ')})`);
  for (const name of flags.keys()) {
    if (!COMMON_FLAGS.includes(name) && !allowed.includes(name)) {
      throw new UsageError(`unknown option --${name} for "traffic ${sub}"${allowed.length > 0 ? ` (it takes ${allowed.map((f) => `--${f}`).join(', ')})` : ''}`);
    }
  }
  if (sub === 'move' && !flags.has('rollout')) {
    const stray = ROLLOUT_FLAGS.find((f) => flags.has(f));
    if (stray !== undefined) throw new UsageError(`--${stray} needs --rollout with "traffic move" (without it the move is at once)`);
  }
}

/**
 * A duration as the config file writes it: "500ms", "30s", "2m", "1h", or a
 * bare number of seconds. Milliseconds, or null when it is none of these.
 */
export function parseCliDuration(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (m === null) return null;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000));
}

function limitText(ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** A duration flag in milliseconds, within (0, maxMs]; the usage error names the flag, the forms and the range. */
function durationFlag(flags: Map<string, string | true>, name: string, maxMs: number): number | undefined {
  const v = flags.get(name);
  if (typeof v !== 'string') return undefined;
  const ms = parseCliDuration(v);
  if (ms === null || ms <= 0 || ms > maxMs) {
    throw new UsageError(`--${name} must be a duration above 0 and at most ${limitText(maxMs)}, like 500ms, 30s, 2m or a number of seconds (got "${v}")`);
  }
  return ms;
}

function numberFlag(flags: Map<string, string | true>, name: string, min: number, max: number, integer: boolean): number | undefined {
  const v = flags.get(name);
  if (typeof v !== 'string') return undefined;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max} (got "${v}")`);
  }
  return n;
}

/** The rollout fields of a request body, from the flags (checked here, so a mistake is exit 2 naming the flag). */
function rolloutBody(flags: Map<string, string | true>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const steps = flags.get('steps');
  if (typeof steps === 'string') {
    const list = steps.split(',').map((s) => (s.trim() === '' ? NaN : Number(s.trim())));
    const ascending = list.every((n, i) => i === 0 || n > list[i - 1]!);
    if (list.some((n) => !Number.isInteger(n) || n < 1 || n > 100) || !ascending || list.at(-1) !== 100 || list.length > 100) {
      throw new UsageError(`--steps must be ascending integers from 1 to 100 ending with 100, like 5,25,50,100 (got "${steps}")`);
    }
    body['steps'] = list;
  }
  const seconds = (ms: number | undefined) => (ms === undefined ? undefined : ms / 1000);
  const interval = seconds(durationFlag(flags, 'interval', ROLLOUT_LIMITS.maxIntervalMs));
  const p99 = seconds(durationFlag(flags, 'max-p99-latency', ROLLOUT_LIMITS.maxLatencyMs));
  const ttfb = seconds(durationFlag(flags, 'max-ttfb-p99', ROLLOUT_LIMITS.maxLatencyMs));
  // Sent as numbers of seconds: the API reads a number as seconds, as the config file does.
  if (interval !== undefined) body['interval'] = interval;
  if (p99 !== undefined) body['max_p99_latency'] = p99;
  if (ttfb !== undefined) body['max_ttfb_p99'] = ttfb;
  const rate = numberFlag(flags, 'max-error-rate', 0, 1, false);
  if (rate !== undefined) body['max_error_rate'] = rate;
  const min = numberFlag(flags, 'min-requests', 0, ROLLOUT_LIMITS.maxMinRequests, true);
  if (min !== undefined) body['min_requests'] = min;
  const onFailure = flags.get('on-failure');
  if (typeof onFailure === 'string') {
    if (onFailure !== 'rollback' && onFailure !== 'pause') throw new UsageError(`--on-failure must be rollback or pause (got "${onFailure}")`);
    body['on_failure'] = onFailure;
  }
  return body;
}

function parseWeights(pairs: string[]): Record<string, number> {
  const weights: Record<string, number> = {};
  for (const kv of pairs) {
    const m = /^([^=]+)=(\d+)$/.exec(kv);
    if (m === null || Number(m[2]) > 100) throw new UsageError(`"${kv}" is not CLUSTER=WEIGHT (WEIGHT an integer from 0 to 100)`);
    weights[m[1]!] = Number(m[2]);
  }
  return weights;
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type Call = (method: string, path: string, body?: unknown) => Promise<{ status: number; data: Json }>;

export interface TrafficCommandOptions {
  /** Ends `status --watch` (tests; the command line ends it with Ctrl-C). */
  readonly signal?: AbortSignal;
}

export async function runTrafficCommand(args: string[], out: (s: string) => void, opts: TrafficCommandOptions = {}): Promise<number> {
  const err = (s: string) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`);
  try {
    const { positional, flags } = parse(args);
    if (flags.has('help') || positional.length === 0) {
      out(HELP);
      return positional.length === 0 && !flags.has('help') ? 2 : 0;
    }
    const [sub, ...rest] = positional as [string, ...string[]];
    checkFlags(sub, flags);
    const unknown = [...flags.keys()].find((f) => FLAG_KINDS[f] === undefined);
    if (unknown !== undefined) throw new UsageError(`unknown option --${unknown}`);
    const admin = String(flags.get('admin') ?? process.env['SERVE_GATEWAY_ADMIN'] ?? 'http://127.0.0.1:9901').replace(/\/+$/, '');
    if (!/^https?:\/\/[^/]+$/.test(admin)) throw new UsageError(`--admin must be a URL like http://127.0.0.1:9901 (got "${admin}")`);
    const json = flags.has('json');
    const token = process.env[TOKEN_ENV] ?? '';
    const call: Call = async (method, path, body) => {
      const headers: Record<string, string> = { 'x-actor': 'cli' };
      if (token !== '') headers['authorization'] = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      let res: Response;
      try {
        res = await fetch(`${admin}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      } catch (e) {
        throw new Unreachable(`cannot reach the admin API at ${admin}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`);
      }
      const data = (await res.json().catch(() => ({}))) as Json;
      return { status: res.status, data };
    };
    const app = rest[0];

    // Check everything the user typed before the token: a usage mistake is named first.
    let request: { method: string; path: string; body?: unknown } | null = null;
    switch (sub) {
      case 'status':
      case 'events':
        if (rest.length > 0) throw new UsageError(`traffic ${sub} takes no arguments (got ${rest.join(' ')})`);
        break;
      case 'set': {
        if (app === undefined || rest.length < 2) throw new UsageError('traffic set needs APP and CLUSTER=WEIGHT...');
        const body: Record<string, unknown> = { weights: parseWeights(rest.slice(1)), force: flags.has('force') };
        if (typeof flags.get('reason') === 'string') body['reason'] = flags.get('reason');
        request = { method: 'PUT', path: `/api/v1/apps/${encodeURIComponent(app)}/weights`, body };
        break;
      }
      case 'rollout': {
        const to = flags.get('to');
        if (app === undefined) throw new UsageError('traffic rollout needs APP and --to CLUSTER');
        if (rest.length > 1) throw new UsageError(`traffic rollout takes one APP (got also ${rest.slice(1).join(' ')})`);
        if (typeof to !== 'string' || to === '') throw new UsageError('traffic rollout needs --to CLUSTER (the cluster the weight moves to)');
        request = { method: 'POST', path: `/api/v1/apps/${encodeURIComponent(app)}/rollout`, body: { to, force: flags.has('force'), ...rolloutBody(flags) } };
        break;
      }
      case 'pause':
      case 'resume':
      case 'promote':
      case 'rollback':
        if (app === undefined) throw new UsageError(`traffic ${sub} needs APP`);
        if (rest.length > 1) throw new UsageError(`traffic ${sub} takes one APP (got also ${rest.slice(1).join(' ')})`);
        request = { method: 'POST', path: `/api/v1/apps/${encodeURIComponent(app)}/rollout/${sub}`, ...(flags.has('force') ? { body: { force: true } } : {}) };
        break;
      case 'move':
        if (rest.length !== 2) throw new UsageError('traffic move needs FROM and TO (two cluster names, or roles in kubernetes mode)');
        if (rest[0] === rest[1]) throw new UsageError(`traffic move: FROM and TO are both "${rest[0]}"`);
        rolloutBody(flags); // checked now, used per app below
        break;
    }
    const limit = numberFlag(flags, 'limit', 1, 10_000, true) ?? 20;
    const everyMs = durationFlag(flags, 'every', 3_600_000) ?? 2000;
    if (MUTATING.has(sub) && token === '') {
      throw new UsageError(`no admin token: export ${TOKEN_ENV}=<token> (the value the gateway reads from the variable named by admin.token_env)`);
    }

    let r: { status: number; data: Json };
    if (sub === 'status') {
      if (flags.has('watch')) return await watchStatus(call, out, json, everyMs, opts.signal);
      r = await call('GET', '/api/v1/status');
      if (r.status === 200 && !json) {
        out(formatStatus(r.data));
        return 0;
      }
    } else if (sub === 'events') {
      r = await call('GET', `/api/v1/events?limit=${limit}`);
      if (r.status === 200 && !json) {
        out(formatEvents(r.data));
        return 0;
      }
    } else if (sub === 'move') {
      return await moveAll(call, out, err, rest[0]!, rest[1]!, flags, json);
    } else {
      r = await call(request!.method, request!.path, request!.body);
    }
    if (json) out(JSON.stringify(r.data, null, 2));
    if (r.status >= 400) {
      if (!json) err(refusalText(r));
      return 1;
    }
    if (!json) out(formatChange(sub, r.data));
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`serve-gateway traffic: ${e.message}\nRun 'serve-gateway traffic --help' for usage.`);
      return 2;
    }
    if (e instanceof Unreachable) {
      err(`serve-gateway traffic: ${e.message}`);
      return 3;
    }
    throw e;
  }
}

function refusalText(r: { status: number; data: Json }): string {
  const e = r.data['error'] as { code?: string; message?: string } | undefined;
  const hint =
    r.status === 401
      ? `\nexport ${TOKEN_ENV}=<token> (the admin token of this gateway)`
      : r.status === 403 && e?.code === 'FORBIDDEN'
        ? `\n${TOKEN_ENV} does not hold this gateway's admin token`
        : '';
  return `refused (${r.status} ${e?.code ?? ''}): ${e?.message ?? 'no reason given'}${hint}`;
}

/** `status --watch`: the status every `everyMs` until Ctrl-C (or `signal`); the screen is cleared on a terminal. */
async function watchStatus(call: Call, out: (s: string) => void, json: boolean, everyMs: number, signal: AbortSignal | undefined): Promise<number> {
  const ctl = new AbortController();
  const stop = () => ctl.abort();
  signal?.addEventListener('abort', stop, { once: true });
  process.once('SIGINT', stop);
  const tty = process.stdout.isTTY === true && signal === undefined;
  try {
    while (!ctl.signal.aborted) {
      let text: string;
      try {
        const r = await call('GET', '/api/v1/status');
        text = r.status !== 200 ? refusalText(r) : json ? JSON.stringify(r.data) : formatStatus(r.data);
      } catch (e) {
        if (!(e instanceof Unreachable)) throw e;
        text = `${e.message} (retrying)`;
      }
      const stamp = `every ${everyMs / 1000} s, ${new Date().toISOString()}; Ctrl-C ends`;
      out(json ? text : tty ? `\x1b[H\x1b[2J${stamp}\n\n${text}` : `--- ${stamp}\n${text}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, everyMs);
        ctl.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  } finally {
    process.off('SIGINT', stop);
    signal?.removeEventListener('abort', stop);
  }
  return 0;
}

/**
 * `traffic move FROM TO`: every app with weight on FROM that TO serves gets
 * FROM's weight moved to TO (other clusters keep theirs), or, with
 * --rollout, starts its rollout to TO. Roles (active, pending, previous) are
 * resolved from the status' clusters. Exit 1 when any app was refused.
 */
async function moveAll(
  call: Call,
  out: (s: string) => void,
  err: (s: string) => void,
  fromArg: string,
  toArg: string,
  flags: Map<string, string | true>,
  json: boolean,
): Promise<number> {
  const s = await call('GET', '/api/v1/status');
  if (s.status !== 200) {
    err(refusalText(s));
    return 1;
  }
  // Per app: a role (kubernetes mode) names that app's RayService's cluster.
  const pick = (a: Json, arg: string) => ((a['clusters'] ?? []) as Json[]).find((c) => c['cluster'] === arg || c['role'] === arg)?.['cluster'] as string | undefined;
  const apps = ((s.data['apps'] ?? []) as Json[]).filter((a) => {
    const f = pick(a, fromArg);
    return f !== undefined && (a['weights']?.[f] ?? 0) > 0;
  });
  const from = fromArg;
  const to = toArg;
  if (apps.length === 0) {
    err(`no app sends weight to cluster "${fromArg}"; nothing to move`);
    return 1;
  }
  const rollout = flags.has('rollout');
  const results: Json[] = [];
  let refused = 0;
  for (const a of apps) {
    const name = String(a['name']);
    const w = a['weights'] as Record<string, number>;
    const f = pick(a, fromArg)!;
    const t = pick(a, toArg);
    if (t === undefined) {
      refused++;
      results.push({ app: name, error: { code: 'UNKNOWN_CLUSTER', message: `cluster "${toArg}" does not serve app "${name}"` } });
      continue;
    }
    const reason = typeof flags.get('reason') === 'string' ? String(flags.get('reason')) : `traffic move ${fromArg} ${toArg}`;
    const r = rollout
      ? await call('POST', `/api/v1/apps/${encodeURIComponent(name)}/rollout`, { to: t, force: flags.has('force'), ...rolloutBody(flags) })
      : await call('PUT', `/api/v1/apps/${encodeURIComponent(name)}/weights`, {
          weights: { ...w, [f]: 0, [t]: (w[t] ?? 0) + (w[f] ?? 0) },
          force: flags.has('force'),
          reason,
        });
    if (r.status >= 400) refused++;
    results.push({ app: name, status: r.status, ...r.data });
  }
  if (json) out(JSON.stringify({ from, to, results }, null, 2));
  else {
    for (const r of results) {
      if (r['error'] !== undefined) err(`${r['app']}: refused (${r['status'] ?? '-'} ${r['error']['code']}): ${r['error']['message']}`);
      else out(formatChange(rollout ? 'rollout' : 'move', r));
    }
    out(`${results.length - refused} of ${results.length} app(s) moved from ${from} to ${to}${rollout ? ' (rollouts started)' : ''}`);
  }
  return refused > 0 ? 1 : 0;
}

function formatEvents(d: Json): string {
  const rows: string[][] = [['ID', 'WHEN', 'WHO', 'APP', 'ACTION', 'RESULT', 'TO', 'REASON']];
  for (const e of d['events'] as Json[]) {
    rows.push([String(e['id']), e['at'], e['actor'], e['app'], e['action'], e['result'], e['to'] ? weightsText(e['to']) : '', e['reason']]);
  }
  return table(rows);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function weightsText(w: Json): string {
  return Object.entries(w).map(([c, v]) => `${c}=${v}`).join(' ');
}

function formatChange(sub: string, d: Json): string {
  const w = d['weights'] ? weightsText(d['weights']) : '';
  const r = d['rollout'] as Json | null;
  const roll = r ? `; rollout ${r['phase']} (${r['active_cluster']} → ${r['pending_cluster']} at ${r['traffic_routed_percent']}%)` : '';
  return `${sub}: ${d['app']} now ${w}${roll}`;
}

// Serve conformance cases, runnable against any Ray Serve HTTP endpoint: the
// simulator (sim.test.ts), real Ray Serve, or the gateway in front of either.
// The target must serve serve-conformance.yaml with an app that behaves like
// the simulator's generic app (docs/simulator.md); cases use only HTTP, and
// those that need a switch or a counter take a hook and skip without it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openStream, send, sendJson, sseData } from './http-client.ts';

export interface ConformanceHooks {
  /** Client disconnects (Serve's 499) counted for an app so far. */
  cancelledCount?(app: string): Promise<number> | number;
  /** Puts the proxy behind baseUrl into draining, and back. */
  drain?(): Promise<void> | void;
  undrain?(): Promise<void> | void;
}

export interface ConformanceTarget {
  /** A Serve proxy (or gateway) serving serve-conformance.yaml. */
  readonly baseUrl: string;
  /** A Serve proxy serving serve-no-root.yaml (no "/" app); 404 case skipped without it. */
  readonly noRootBaseUrl?: string;
  /** Ray dashboard origin (GET /api/serve/applications/); dashboard case skipped without it. */
  readonly dashboardUrl?: string;
  /**
   * The target refuses "*" and request targets uvicorn cannot parse itself,
   * with 400 `Bad request: ...` (the gateway's BAD_REQUEST, docs/errors.md),
   * where Serve answers 404 with its not-found text for "*" and uvicorn 400
   * `Invalid HTTP request received.` for the others.
   */
  readonly localBadRequest?: boolean;
  readonly hooks?: ConformanceHooks;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TEXT = 'text/plain; charset=utf-8';
const REPLICA_STATES = ['STARTING', 'UPDATING', 'RECOVERING', 'RUNNING', 'STOPPING', 'PENDING_MIGRATION'];
const PROXY_STATES = ['STARTING', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'DRAINED'];
const APP_STATES = ['NOT_STARTED', 'DEPLOYING', 'DEPLOY_FAILED', 'RUNNING', 'UNHEALTHY', 'DELETING'];
/** Per-test limit: a case that waits on a slot that is never freed fails instead of hanging. */
const T = { timeout: 5000 };

interface AppReply {
  app: string;
  path: string;
  query: string;
  request_id: string;
  body_bytes: number;
  method: string;
}

/** Registers the conformance tests; `target` is read when each test runs. */
export function conformanceCases(target: () => ConformanceTarget): void {
  const url = (path: string): string => `${target().baseUrl}${path}`;
  const appOf = async (path: string): Promise<string> => {
    const r = await send(url(path));
    assert.equal(r.status, 200, `${path}: ${r.body}`);
    return (JSON.parse(r.body) as AppReply).app;
  };

  test('routing: longest route_prefix wins, with a segment boundary', T, async () => {
    assert.equal(await appOf('/llm'), 'llm');
    assert.equal(await appOf('/llm/'), 'llm');
    assert.equal(await appOf('/llm/x'), 'llm');
    assert.equal(await appOf('/llm/v1/chat/completions'), 'llm');
    assert.equal(await appOf('/tiny/a/b'), 'tiny');
    assert.equal(await appOf('/llmx'), 'default', '/llmx must not match /llm');
    assert.equal(await appOf('/LLM'), 'default', 'matching is case-sensitive');
    assert.equal(await appOf('/'), 'default');
    assert.equal(await appOf('/other/path'), 'default');
  });

  test('routing: path and query reach the app unchanged (prefix not stripped)', T, async () => {
    const r = await send(url('/llm/v1/chat/completions?model=m1&x=a%20b&x=2'));
    assert.equal(r.status, 200);
    const body = JSON.parse(r.body) as AppReply;
    assert.equal(body.app, 'llm');
    assert.equal(body.path, '/llm/v1/chat/completions');
    assert.equal(body.query, 'model=m1&x=a%20b&x=2');
    const root = JSON.parse((await send(url('/a/b?c=d'))).body) as AppReply;
    assert.equal(root.path, '/a/b');
    assert.equal(root.query, 'c=d');
  });

  /** Sends `target` verbatim on the request line; expects a 200 from an app. */
  const viaTarget = async (rawTarget: string): Promise<AppReply> => {
    const r = await send(target().baseUrl, { target: rawTarget });
    assert.equal(r.status, 200, `${rawTarget}: ${r.body}`);
    return JSON.parse(r.body) as AppReply;
  };
  /** [target, app, path the app sees (uvicorn's scope path), query]. */
  const expectRouted = async (cases: ReadonlyArray<readonly [string, string, string, string]>): Promise<void> => {
    for (const [rawTarget, app, path, query] of cases) {
      const body = await viaTarget(rawTarget);
      assert.deepEqual([body.app, body.path, body.query], [app, path, query], rawTarget);
    }
  };

  // uvicorn (httptools) decodes the path with urllib.parse.unquote: "%XX"
  // with two hex digits is a byte, anything else stays, invalid UTF-8 becomes
  // U+FFFD; Serve matches route prefixes on that decoded path.
  test('routing: on the path as uvicorn decodes it (invalid escapes, %2F, double slashes)', T, async () => {
    await expectRouted([
      ['/ll%6d/%ZZ', 'llm', '/llm/%ZZ', ''],
      ['/ll%6d/%FF', 'llm', '/llm/\uFFFD', ''],
      ['/ll%6d/%e2%82%ac%e2%82', 'llm', '/llm/\u20AC\uFFFD', ''],
      ['/ll%6d/%ZZ?x=%ZZ&y=%FF', 'llm', '/llm/%ZZ', 'x=%ZZ&y=%FF'],
      ['/%6C%6C%6D', 'llm', '/llm', ''],
      ['/ll%6d%2Fa', 'llm', '/llm/a', ''],
      ['/llm%2F', 'llm', '/llm/', ''],
      ['/ll%6d%ZZ', 'default', '/llm%ZZ', ''],
      ['/ll%6d%', 'default', '/llm%', ''],
      ['/LL%4D', 'default', '/LLM', ''],
      ['/a%%41', 'default', '/a%A', ''],
      ['//llm/a', 'default', '//llm/a', ''],
      ['/llm//a', 'llm', '/llm//a', ''],
      ['/tiny%2F..%2Fllm', 'tiny', '/tiny/../llm', ''],
      ['/llm/%2e%2e/tiny', 'llm', '/llm/../tiny', ''],
    ]);
  });

  test('routing: a "#" fragment in the target is not part of the path or query', T, async () => {
    await expectRouted([
      ['/llm#frag', 'llm', '/llm', ''],
      ['/llm/a?x=1#frag', 'llm', '/llm/a', 'x=1'],
      ['/ll%6d#x?y', 'llm', '/llm', ''],
      ['/llmx#/llm', 'default', '/llmx', ''],
      ['/#/llm', 'default', '/', ''],
    ]);
  });

  test('routing: an absolute-form target routes on its path (the authority is ignored)', T, async () => {
    await expectRouted([
      ['http://example.com/llm/a?x=1', 'llm', '/llm/a', 'x=1'],
      ['http://example.com/ll%6d/%ZZ', 'llm', '/llm/%ZZ', ''],
      ['HTTP://EXAMPLE.COM/ll%6d/%FF', 'llm', '/llm/\uFFFD', ''],
      ['https://user@example.com:8443/tiny/t#f', 'tiny', '/tiny/t', ''],
      ['http://[::1]/llm', 'llm', '/llm', ''],
      ['ftp://example.com/llm?q', 'llm', '/llm', 'q'],
      ['http://example.com//llm', 'default', '//llm', ''],
      ['http://example.com/other', 'default', '/other', ''],
    ]);
    const hz = await send(target().baseUrl, { target: 'http://example.com/-/healthz' });
    assert.equal(hz.status, 200);
    assert.equal(hz.body, 'success');
  });

  test('routing: "*" matches no route, not even "/"', T, async () => {
    for (const method of ['GET', 'OPTIONS']) {
      const r = await send(target().baseUrl, { method, target: '*' });
      assert.equal(r.headers['content-type'], TEXT, method);
      if (target().localBadRequest) {
        assert.equal(r.status, 400, method);
        assert.match(r.body, /^Bad request: /, method);
      } else {
        assert.equal(r.status, 404, method);
        assert.match(r.body, /^Path '\*' not found\. Ping http:\/\/.+\/-\/routes for available routes\.$/, method);
      }
    }
  });

  // httptools.parse_url refuses them (no path, bad host or port), or uvicorn
  // finds no path: uvicorn answers 400 before Serve sees the request.
  test('routing: a target uvicorn cannot parse gets 400, never reaches an app', T, async () => {
    for (const rawTarget of ['http://example.com', 'http://example.com?x=1', 'http://example.com#/llm', 'http://example.com:99999/llm', 'http://exa_mple.com/llm', 'http:///llm', 'http://u@@example.com/llm']) {
      const r = await send(target().baseUrl, { target: rawTarget });
      assert.equal(r.status, 400, `${rawTarget}: ${r.body}`);
      assert.equal(r.headers['content-type'], TEXT, rawTarget);
      if (target().localBadRequest) assert.match(r.body, /^Bad request: /, rawTarget);
      else assert.equal(r.body, 'Invalid HTTP request received.', rawTarget);
    }
  });

  test('404 with Serve text when no route matches (no "/" app)', T, async (t) => {
    const base = target().noRootBaseUrl;
    if (base === undefined) return t.skip('no noRootBaseUrl target');
    const r = await send(`${base}/nothing/here?q=1`);
    assert.equal(r.status, 404);
    assert.equal(r.headers['content-type'], TEXT);
    assert.match(r.body, /^Path '\/nothing\/here' not found\. Ping http:\/\/.+\/-\/routes for available routes\.$/);
    assert.match(String(r.headers['x-request-id']), UUID);
    const ok = await send(`${base}/llm/v1`);
    assert.equal(ok.status, 200);
    const miss = await send(`${base}/llmx`);
    assert.equal(miss.status, 404, '/llmx must not match /llm');
  });

  test('/-/healthz answers 200 "success"', T, async () => {
    const r = await send(url('/-/healthz'));
    assert.equal(r.status, 200);
    assert.equal(r.body, 'success');
    assert.equal(r.headers['content-type'], TEXT);
    assert.match(String(r.headers['x-request-id']), UUID);
  });

  test('/-/routes answers the route table as minified JSON', T, async () => {
    const r = await send(url('/-/routes'));
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.deepEqual(JSON.parse(r.body), { '/llm': 'llm', '/tiny': 'tiny', '/': 'default' });
    assert.ok(!/\s/.test(r.body), `not minified: ${r.body}`);
  });

  test('/-/healthz reports a draining node with 503 (hook)', T, async (t) => {
    const h = target().hooks;
    if (!h?.drain || !h.undrain) return t.skip('no drain hook');
    await h.drain();
    try {
      const r = await send(url('/-/healthz'));
      assert.equal(r.status, 503);
      assert.equal(r.body, 'This node is being drained.');
      const routes = await send(url('/-/routes'));
      assert.equal(routes.status, 503);
      assert.equal(routes.body, 'This node is being drained.');
      const data = await send(url('/llm/still-served'));
      assert.equal(data.status, 200, 'a draining proxy still serves requests');
    } finally {
      await h.undrain();
    }
    assert.equal((await send(url('/-/healthz'))).status, 200);
  });

  test('x-request-id is echoed, or generated as a UUID, on every response', T, async () => {
    const given = await send(url('/llm/id'), { headers: { 'x-request-id': 'conf-req-42' } });
    assert.equal(given.headers['x-request-id'], 'conf-req-42');
    assert.equal((JSON.parse(given.body) as AppReply).request_id, 'conf-req-42');
    const made = await send(url('/llm/id'));
    const id = String(made.headers['x-request-id']);
    assert.match(id, UUID);
    assert.equal((JSON.parse(made.body) as AppReply).request_id, id, 'the app sees the generated id');
    const hz = await send(url('/-/healthz'), { headers: { 'x-request-id': 'conf-hz' } });
    assert.equal(hz.headers['x-request-id'], 'conf-hz');
  });

  test('non-streaming replies are JSON with content-length; request bodies are read', T, async () => {
    const r = await sendJson(url('/llm/v1/completions'), { prompt: 'x'.repeat(1000) });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
    const body = JSON.parse(r.body) as AppReply;
    assert.equal(body.method, 'POST');
    assert.equal(body.body_bytes, Buffer.byteLength(JSON.stringify({ prompt: 'x'.repeat(1000) })));
  });

  test('SSE token streams: text/event-stream, data: frames, data: [DONE]', T, async () => {
    const variants: [string, Promise<{ status: number; headers: Record<string, unknown>; body: string }>][] = [
      ['path /stream', send(url('/llm/stream?tokens=3&interval_ms=1'))],
      ['Accept header', send(url('/llm/v1/chat/completions?tokens=3&interval_ms=1'), { headers: { accept: 'text/event-stream' } })],
      ['"stream": true body', sendJson(url('/llm/v1/chat/completions?tokens=3&interval_ms=1'), { model: 'm', stream: true })],
    ];
    for (const [name, p] of variants) {
      const r = await p;
      assert.equal(r.status, 200, name);
      assert.match(String(r.headers['content-type']), /^text\/event-stream/, name);
      assert.equal(r.headers['content-length'], undefined, `${name}: a stream has no content-length`);
      const frames = sseData(r.body);
      assert.equal(frames[frames.length - 1], '[DONE]', name);
      const tokens = frames.slice(0, -1).map((f) => JSON.parse(f) as { index: number; token: string });
      assert.deepEqual(tokens.map((x) => x.index), [0, 1, 2], name);
      for (const x of tokens) assert.equal(typeof x.token, 'string');
    }
  });

  test('request bodies stream through (echo upload)', T, async () => {
    const chunks = Array.from({ length: 16 }, (_, i) => Buffer.alloc(64 * 1024, 97 + i));
    const r = await send(url('/llm/echo'), { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: chunks });
    assert.equal(r.status, 200);
    assert.equal(r.body, Buffer.concat(chunks).toString('utf8'));
  });

  test('backpressure: 503 with Serve text once max_queued_requests wait', T, async () => {
    // tiny: 1 replica, max_ongoing_requests 1, max_queued_requests 1.
    const running = await openStream(url('/tiny/stream?tokens=100000&interval_ms=20'));
    try {
      const b = send(url('/tiny/b?latency_ms=0'));
      const c = send(url('/tiny/c?latency_ms=0'));
      const first = await Promise.race([b, c]);
      assert.equal(first.status, 503);
      assert.equal(first.headers['content-type'], TEXT);
      assert.equal(first.body, 'Request dropped due to backpressure (num_queued_requests=1, max_queued_requests=1).');
      assert.ok(first.headers['x-request-id']);
      running.destroy();
      const [rb, rc] = await Promise.all([b, c]);
      assert.deepEqual([rb.status, rc.status].sort(), [200, 503], 'the queued request is served once the slot frees');
    } finally {
      running.destroy();
    }
  });

  test('client disconnect cancels the request and frees its slot (499)', T, async () => {
    const hooks = target().hooks;
    const before = hooks?.cancelledCount ? await hooks.cancelledCount('tiny') : null;
    const s = await openStream(url('/tiny/stream?tokens=100000&interval_ms=20'));
    assert.match(s.first, /^data: /);
    s.destroy();
    // tiny has one slot: this succeeds only if the cut stream released it.
    const next = await send(url('/tiny/after?latency_ms=0'));
    assert.equal(next.status, 200);
    if (before !== null && hooks?.cancelledCount) {
      assert.equal(await hooks.cancelledCount('tiny'), before + 1, 'one cancellation (499) counted');
    }
  });

  test('dashboard GET /api/serve/applications/ has ServeInstanceDetails shape', T, async (t) => {
    const dash = target().dashboardUrl;
    if (dash === undefined) return t.skip('no dashboardUrl');
    const r = await send(`${dash}/api/serve/applications/`);
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    const d = JSON.parse(r.body) as Record<string, any>;
    // deploy_mode (always MULTI_APP) was dropped from ServeInstanceDetails by Ray 2.53.
    assert.ok(d['deploy_mode'] === undefined || d['deploy_mode'] === 'MULTI_APP', `deploy_mode ${d['deploy_mode']}`);
    assert.equal(typeof d['controller_info'], 'object');
    assert.ok(d['target_capacity'] === null || typeof d['target_capacity'] === 'number');
    assert.equal(typeof d['http_options'], 'object');
    const proxies = Object.values(d['proxies'] as Record<string, any>);
    assert.ok(proxies.length >= 1);
    for (const p of proxies) assert.ok(PROXY_STATES.includes(p.status), `proxy status ${p.status}`);
    const apps = d['applications'] as Record<string, any>;
    const expect: [string, string, string, number, number, number][] = [
      ['llm', '/llm', 'LLMServer', 8, 16, 2],
      ['tiny', '/tiny', 'TinyServer', 1, 1, 1],
      ['default', '/', 'WebApp', 20, -1, 1],
    ];
    for (const [name, prefix, ingress, mor, mqr, replicas] of expect) {
      const a = apps[name];
      assert.ok(a, `application ${name}`);
      assert.equal(a.name, name);
      assert.equal(a.route_prefix, prefix);
      assert.ok(APP_STATES.includes(a.status));
      assert.equal(a.status, 'RUNNING');
      assert.equal(typeof a.message, 'string');
      assert.equal(typeof a.deployed_app_config, 'object');
      assert.equal(a.deployment_topology?.ingress_deployment, ingress, `${name}.deployment_topology.ingress_deployment`);
      const dep = a.deployments[ingress];
      assert.ok(dep, `${name}.deployments.${ingress}`);
      assert.equal(dep.name, ingress);
      assert.equal(dep.deployment_config.max_ongoing_requests, mor);
      assert.equal(dep.deployment_config.max_queued_requests, mqr);
      assert.ok(Array.isArray(dep.replicas));
      for (const rep of dep.replicas) {
        assert.ok(REPLICA_STATES.includes(rep.state), `replica state ${rep.state}`);
        assert.equal(typeof rep.replica_id, 'string');
      }
      assert.equal(dep.replicas.filter((x: { state: string }) => x.state === 'RUNNING').length, replicas, `${name} RUNNING replicas`);
    }
  });
}

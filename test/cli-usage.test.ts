// `serve-gateway traffic` usage mistakes, table-driven: each exits 2 with the
// flag (or argument) named and the allowed values, before anything is sent;
// a missing token names the variable to export. The binary is run as a user
// runs it (bin/serve-gateway), against an admin URL where nothing listens: a
// case that reached the network would exit 3, not 2. Plus the CLI's weight:
// `--version` loads none of the gateway.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CLI_ROLLOUT_LIMITS, parseCliDuration } from '../src/cli/traffic-command.ts';
import { ROLLOUT_LIMITS } from '../src/control/rollout.ts';

const BIN = new URL('../bin/serve-gateway', import.meta.url).pathname;
/** A port nothing listens on (reserved for discard; never opened in tests). */
const NOWHERE = ['--admin', 'http://127.0.0.1:9'];

function run(args: string[], env: Record<string, string | undefined> = { SERVE_GATEWAY_ADMIN_TOKEN: 't' }) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// [args, exit code, stderr must match]
const CASES: Array<[string[], number, RegExp]> = [
  [['set', 'llm'], 2, /traffic set needs APP and CLUSTER=WEIGHT/],
  [['set', 'llm', 'green=lots'], 2, /"green=lots" is not CLUSTER=WEIGHT \(WEIGHT an integer from 0 to 100\)/],
  [['set', 'llm', 'green=101'], 2, /"green=101" is not CLUSTER=WEIGHT \(WEIGHT an integer from 0 to 100\)/],
  [['rollout', 'llm'], 2, /traffic rollout needs --to CLUSTER/],
  [['rollout', 'llm', '--to'], 2, /--to needs a value/],
  [['rollout', 'llm', '--to', 'green', '--steps', '10,x'], 2, /--steps must be ascending integers from 1 to 100 ending with 100, like 5,25,50,100 \(got "10,x"\)/],
  [['rollout', 'llm', '--to', 'green', '--steps', '50,10,100'], 2, /--steps must be ascending/],
  [['rollout', 'llm', '--to', 'green', '--steps', '10,50'], 2, /ending with 100/],
  [['rollout', 'llm', '--to', 'green', '--interval', '30x'], 2, /--interval must be a duration above 0 and at most 24h, like 500ms, 30s, 2m or a number of seconds \(got "30x"\)/],
  [['rollout', 'llm', '--to', 'green', '--interval', '25h'], 2, /--interval must be a duration above 0 and at most 24h/],
  [['rollout', 'llm', '--to', 'green', '--interval', '0'], 2, /--interval must be a duration above 0/],
  [['rollout', 'llm', '--to', 'green', '--max-p99-latency', '2h'], 2, /--max-p99-latency must be a duration above 0 and at most 1h/],
  [['rollout', 'llm', '--to', 'green', '--max-ttfb-p99', 'soon'], 2, /--max-ttfb-p99 must be a duration/],
  [['rollout', 'llm', '--to', 'green', '--max-error-rate', '2'], 2, /--max-error-rate must be a number from 0 to 1 \(got "2"\)/],
  [['rollout', 'llm', '--to', 'green', '--max-error-rate', 'low'], 2, /--max-error-rate must be a number from 0 to 1/],
  [['rollout', 'llm', '--to', 'green', '--min-requests', '1.5'], 2, /--min-requests must be an integer from 0 to 1000000 \(got "1.5"\)/],
  [['rollout', 'llm', '--to', 'green', '--min-requests', '-1'], 2, /--min-requests must be an integer from 0 to 1000000/],
  [['rollout', 'llm', '--to', 'green', '--on-failure', 'retry'], 2, /--on-failure must be rollback or pause \(got "retry"\)/],
  [['rollout', 'llm', '--to', 'green', '--step', '10,100'], 2, /unknown option --step for "traffic rollout" \(it takes --to, --steps, --interval/],
  [['rollout', 'llm', 'default', '--to', 'green'], 2, /traffic rollout takes one APP \(got also default\)/],
  [['pause'], 2, /traffic pause needs APP/],
  [['pause', 'llm', 'default'], 2, /traffic pause takes one APP/],
  [['pause', 'llm', '--force'], 2, /unknown option --force for "traffic pause"/],
  [['status', '--force'], 2, /unknown option --force for "traffic status" \(it takes --watch, --every\)/],
  [['status', 'extra'], 2, /traffic status takes no arguments/],
  [['status', '--watch', '--every', 'often'], 2, /--every must be a duration above 0 and at most 1h/],
  [['events', '--limit', '0'], 2, /--limit must be an integer from 1 to 10000 \(got "0"\)/],
  [['events', '--limit', 'all'], 2, /--limit must be an integer from 1 to 10000/],
  [['move', 'blue'], 2, /traffic move needs FROM and TO/],
  [['move', 'blue', 'blue'], 2, /FROM and TO are both "blue"/],
  [['move', 'blue', 'green', '--steps', '50,100'], 2, /--steps needs --rollout with "traffic move"/],
  [['move', 'blue', 'green', '--rollout', '--interval', 'x'], 2, /--interval must be a duration/],
  [['frobnicate'], 2, /unknown traffic command "frobnicate" \(one of: status, events, set, rollout/],
  [['status', '--json=yes'], 2, /--json takes no value/],
  [['status', '--admin', 'localhost:9901'], 2, /--admin must be a URL like http:\/\/127\.0\.0\.1:9901 \(got "localhost:9901"\)/],
  [[], 2, /^$/], // help on stdout, exit 2
  // Well-formed: reaches for the network and finds nothing there (3), so the usage checks above did not stop it.
  [['status'], 3, /cannot reach the admin API at http:\/\/127\.0\.0\.1:9/],
  [['rollout', 'llm', '--to', 'green', '--interval', '30', '--steps', '10,100', '--max-ttfb-p99', '1500ms'], 3, /cannot reach the admin API/],
];

for (const [args, code, err] of CASES) {
  test(`traffic ${args.join(' ') || '(nothing)'} → exit ${code}`, () => {
    const r = run(['traffic', ...args, ...(args.length > 0 && !args.includes('--admin') ? NOWHERE : [])]);
    assert.equal(r.code, code, `stdout: ${r.out}\nstderr: ${r.err}`);
    assert.match(r.err, err);
  });
}

test('a mutating command without a token says which variable to export (exit 2, nothing sent)', () => {
  for (const args of [['set', 'llm', 'green=100'], ['rollout', 'llm', '--to', 'green'], ['promote', 'llm'], ['move', 'blue', 'green']]) {
    const r = run(['traffic', ...args, ...NOWHERE], { SERVE_GATEWAY_ADMIN_TOKEN: undefined });
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /no admin token: export SERVE_GATEWAY_ADMIN_TOKEN=<token>/);
  }
  // Reads need no token (open on loopback): they go to the network.
  assert.equal(run(['traffic', 'status', ...NOWHERE], { SERVE_GATEWAY_ADMIN_TOKEN: undefined }).code, 3);
});

test('the CLI checks the same rollout bounds as the API', () => {
  assert.deepEqual(CLI_ROLLOUT_LIMITS, ROLLOUT_LIMITS);
});

test('durations take the config file forms; a bare number is seconds', () => {
  const cases: Array<[string, number | null]> = [
    ['30', 30_000], ['30s', 30_000], ['1.5', 1500], ['500ms', 500], ['2m', 120_000], ['1h', 3_600_000], [' 45s ', 45_000],
    ['30x', null], ['', null], ['-5', null], ['1e3', null], ['s', null],
  ];
  for (const [text, ms] of cases) assert.equal(parseCliDuration(text), ms, text);
});

test('--version and traffic --help load none of the gateway (no fastify, pino or Kubernetes client)', () => {
  const probe = `
    import { registerHooks } from 'node:module';
    const loaded = [];
    registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); loaded.push(r.url); return r; } });
    const { main } = await import(${JSON.stringify(new URL('../src/cli/main.ts', import.meta.url).href)});
    const out = process.stdout.write.bind(process.stdout);
    process.stdout.write = () => true;
    await main(process.argv.slice(1));
    process.stdout.write = out;
    console.log(JSON.stringify(loaded));`;
  for (const args of [['--version'], ['traffic', '--help']]) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe, '--', ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const loaded = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as string[];
    const heavy = loaded.filter((u) => /node_modules\/(fastify|pino|@kubernetes|undici|prom-client|opossum|yaml)\//.test(u) || /src\/(main|proxy|sim|kubernetes)/.test(u));
    assert.deepEqual(heavy, [], `${args.join(' ')} loaded ${heavy.join(', ')}`);
  }
});

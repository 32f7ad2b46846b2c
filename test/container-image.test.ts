// The container image (Dockerfile, .dockerignore) without docker: the CLI is
// run the way the image's ENTRYPOINT and CMD run it, with the image's ENV, the
// config in a read-only directory standing in for /etc/serve-gateway and a
// writable one standing in for the image's volume /var/lib/serve-gateway.
//
// - README's config (`state_dir: ./var`) starts and writes its state under the
//   volume, not next to the config (issue 9 item 6: it used to die with EACCES
//   and a stack trace).
// - A volume that cannot be written, or no SERVE_GATEWAY_STATE_DIR at all with a
//   read-only config dir, stops the gateway with exit 1 and one line.
// - What the image's COPY lines take, after .dockerignore, has no tests or fixtures.
//
// Root ignores file modes, so as root the gateway runs as nobody (65534)
// when nobody can read the checkout (else the two file-mode tests are skipped).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, matchesGlob, relative, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const NOBODY = 65_534;
const asRoot = process.getuid?.() === 0;
/**
 * As root, file modes are tested as nobody, which must be able to read the
 * checkout (a clone under /root is not); otherwise those tests are skipped.
 */
const asNobody =
  asRoot &&
  spawnSync(process.execPath, ['-e', "require('node:fs').accessSync('src/cli/main.ts')"], { cwd: resolve(import.meta.dirname, '..'), uid: NOBODY, gid: NOBODY }).status === 0;
const modesUntestable = asRoot && !asNobody ? `running as root and uid ${NOBODY} cannot read the checkout: file modes cannot be tested here` : false;
/** Start to "listening" on a busy 2-core machine (typical: under 2 s). */
const START_DEADLINE_MS = 60_000;

interface Image {
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
  workdir: string;
  copies: string[];
}

/** The final stage of the Dockerfile: ENV, ENTRYPOINT, CMD, WORKDIR and the build-context COPY sources. */
function readImage(): Image {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages = text.split(/^FROM /m);
  const last = stages[stages.length - 1]!;
  const img: Image = { env: {}, entrypoint: [], cmd: [], workdir: '/', copies: [] };
  for (const line of last.split('\n')) {
    const [instr, ...rest] = line.trim().split(/\s+/);
    const arg = rest.join(' ');
    if (instr === 'ENV') {
      for (const m of arg.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) img.env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
    } else if (instr === 'ENTRYPOINT') img.entrypoint = JSON.parse(arg) as string[];
    else if (instr === 'CMD') img.cmd = JSON.parse(arg) as string[];
    else if (instr === 'WORKDIR') img.workdir = arg;
    else if (instr === 'COPY' && !arg.startsWith('--from')) img.copies.push(...rest.slice(0, -1));
  }
  return img;
}

const image = readImage();
const CONFIG_DIR_IN_IMAGE = '/etc/serve-gateway';
const STATE_DIR_IN_IMAGE = '/var/lib/serve-gateway';

/** README's config (the first YAML block under "## Configuration"), listening on free loopback ports. */
function readmeConfig(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Configuration'));
  const m = /```yaml\n([\s\S]*?)```/.exec(section);
  assert.ok(m, 'README has a YAML block under ## Configuration');
  const yaml = m[1]!;
  assert.match(yaml, /^state_dir: \.\/var\b/m, 'README config keeps state_dir: ./var (the case this test is about)');
  return yaml.replace(/^listen: .*$/m, 'listen: "127.0.0.1:0"').replace(/^admin: \{ listen: "[^"]*"/m, 'admin: { listen: "127.0.0.1:0"');
}

const dirs: string[] = [];
function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  chmodSync(d, 0o755);
  return d;
}

/** A config dir as the image sees a mounted ConfigMap or bind mount: read-only for the gateway's user. */
function readOnlyConfigDir(yaml: string): string {
  const d = tempDir('sg-image-etc-');
  writeFileSync(join(d, 'gateway.yaml'), yaml);
  copyFileSync(join(ROOT, 'config/serve.yaml'), join(d, 'serve.yaml'));
  chmodSync(d, 0o555);
  return d;
}

/** The image's volume: writable by the gateway's user (or not). */
function volumeDir(writable: boolean): string {
  const d = tempDir('sg-image-var-');
  if (asNobody) chownSync(d, NOBODY, NOBODY);
  chmodSync(d, writable ? 0o755 : 0o555);
  return d;
}

interface Run {
  code: number | null;
  stderr: string;
  adminUrl: string | null;
  stop(): Promise<number | null>;
}

/** ENTRYPOINT + CMD with the image's ENV; the image's paths mapped to the stand-ins. */
async function runAsImage(configDir: string, volume: string | null, extraEnv: Record<string, string> = {}): Promise<Run> {
  const map = (s: string) => s.replace(CONFIG_DIR_IN_IMAGE, configDir).replace(STATE_DIR_IN_IMAGE, volume ?? STATE_DIR_IN_IMAGE);
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
  for (const [k, v] of Object.entries(image.env)) env[k] = map(v);
  if (volume === null) delete env['SERVE_GATEWAY_STATE_DIR'];
  Object.assign(env, extraEnv);
  const argv = [...image.entrypoint, ...image.cmd].map(map);
  assert.equal(argv[0], 'node');
  // WORKDIR /app holds what the COPY lines put there: the repository root here.
  const child = spawn(process.execPath, argv.slice(1), {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(asNobody ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const run: Run = {
    code: null,
    get stderr() {
      return stderr;
    },
    adminUrl: null,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
  const deadline = Date.now() + START_DEADLINE_MS;
  while (Date.now() < deadline && child.exitCode === null && !/listening on /.test(stderr)) {
    await Promise.race([exited, new Promise((r) => setTimeout(r, 25))]);
  }
  run.code = child.exitCode;
  const m = /\(admin (http:\/\/[^)]+)\)/.exec(stderr);
  run.adminUrl = m ? m[1]! : null;
  return run;
}

function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
}

describe('the container image, run as its ENTRYPOINT does', { concurrency: false }, () => {
  after(() => {
    for (const d of dirs) {
      try {
        chmodSync(d, 0o755);
      } catch {
        /* gone */
      }
      rmSync(d, { recursive: true, force: true });
    }
  });

  test('the Dockerfile sets the state volume as SERVE_GATEWAY_STATE_DIR and runs start with the config under /etc/serve-gateway', () => {
    assert.equal(image.env['SERVE_GATEWAY_STATE_DIR'], STATE_DIR_IN_IMAGE);
    assert.deepEqual(image.entrypoint, ['node', 'src/cli/main.ts']);
    assert.deepEqual(image.cmd, ['start', '--config', `${CONFIG_DIR_IN_IMAGE}/gateway.yaml`]);
    assert.equal(image.workdir, '/app');
  });

  test("README's config (state_dir: ./var) starts and keeps its state on the volume", { timeout: 120_000 }, async () => {
    const etc = readOnlyConfigDir(readmeConfig());
    const volume = volumeDir(true);
    const run = await runAsImage(etc, volume, { SERVE_GATEWAY_ADMIN_TOKEN: 'image-test-token' });
    try {
      assert.equal(run.code, null, `the gateway runs: ${run.stderr}`);
      assert.ok(run.adminUrl, run.stderr);
      // A weight change is written to the state file: under the volume, not next to the config.
      const res = await fetch(`${run.adminUrl}/api/v1/apps/llm/weights`, {
        method: 'PUT',
        headers: { authorization: 'Bearer image-test-token', 'content-type': 'application/json' },
        body: JSON.stringify({ weights: { blue: 90, green: 10 }, force: true }),
      });
      assert.equal(res.status, 200, await res.text());
      assert.ok(existsSync(join(volume, 'var', 'traffic-state.json')), `state in ${volume}/var: ${readdirSync(volume).join(', ')}`);
      assert.deepEqual(readdirSync(etc).sort(), ['gateway.yaml', 'serve.yaml'], 'nothing written next to the config');
    } finally {
      assert.equal(await run.stop(), 0, run.stderr);
    }
  });

  test('a state volume that cannot be written: exit 1 with one line naming the path and the variable', { timeout: 120_000, skip: modesUntestable }, async () => {
    const etc = readOnlyConfigDir(readmeConfig());
    const volume = volumeDir(false);
    const run = await runAsImage(etc, volume);
    assert.equal(await run.stop(), 1);
    assertOneLine(run.stderr, new RegExp(`^serve-gateway: not starting: cannot write state_dir ${volume}/var \\(EACCES\\): SERVE_GATEWAY_STATE_DIR=${volume} must be a writable directory`));
  });

  test('without SERVE_GATEWAY_STATE_DIR (an older image) a read-only config dir is one line, not EACCES with a stack trace', { timeout: 120_000, skip: modesUntestable }, async () => {
    const etc = readOnlyConfigDir(readmeConfig());
    const run = await runAsImage(etc, null);
    assert.equal(await run.stop(), 1);
    assertOneLine(run.stderr, new RegExp(`^serve-gateway: not starting: cannot write state_dir ${etc}/var \\(EACCES\\): set state_dir to a writable directory, or set SERVE_GATEWAY_STATE_DIR`));
  });

  test('the image holds no tests or test fixtures (.dockerignore), and what runs is there', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    assert.ok(!ignore.some((p) => p.startsWith('!')), 'no exceptions (this check does not model them)');
    // Docker drops a path when it or one of its parent folders matches a pattern.
    const ignored = (rel: string) => {
      const parts = rel.split('/');
      return parts.some((_, i) => ignore.some((p) => matchesGlob(parts.slice(0, i + 1).join('/'), p)));
    };
    const files: string[] = [];
    const walk = (p: string) => {
      const rel = relative(ROOT, p);
      if (ignored(rel)) return;
      if (statSync(p).isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
      else files.push(rel);
    };
    assert.ok(image.copies.length > 0);
    for (const src of image.copies) walk(join(ROOT, src));
    const tests = files.filter((f) => f.endsWith('.test.ts') || f.split('/').includes('fixtures'));
    assert.deepEqual(tests, [], 'tests or fixtures in the image');
    for (const f of ['src/cli/main.ts', 'src/admin/ui/index.html', 'bin/serve-gateway', 'package.json']) {
      assert.ok(files.includes(f), `${f} is in the image`);
    }
    // Nothing that runs imports what was left out.
    for (const f of files.filter((x) => x.endsWith('.ts'))) {
      for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
        const target = relative(ROOT, resolve(ROOT, f, '..', m[1]!));
        assert.ok(files.includes(target), `${f} imports ${target}, which is not in the image`);
      }
    }
  });
});

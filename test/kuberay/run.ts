// `npm run test:kuberay`: runs test/kuberay/*.test.ts inside a network
// namespace created for the run (`ip netns add`, which needs root; CI runs as
// root). The namespace has only `lo`; the kubelet stand-in adds the pods'
// addresses (10.244.0.0/16) to it, and the API server, the controller manager,
// the KubeRay operator, the simulated Ray and the gateway under test all run
// in it, so nothing can reach, or be reached from, any other network.
//
// Where no namespace can be created, the tests still run but skip, each with
// the reason (the summary shows them as skipped, never as passed), and this
// script says so on its last line.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '../..');
const ns = `sg-kuberay-${process.pid}`;
// `node test/kuberay/run.ts [FILE...] [--node-test-flag...]`: the given files, or all of them.
const extra = process.argv.slice(2);
const files = extra.filter((a) => !a.startsWith('-'));
const flags = extra.filter((a) => a.startsWith('-'));
const testArgs = ['--test', '--test-concurrency=1', ...flags, ...(files.length > 0 ? files : ['test/kuberay/*.test.ts'])];

function ip(...args: string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: r.status === 0, err: (r.stderr || (r.error ? String(r.error) : '')).trim() };
}

const created = ip('netns', 'add', ns);
let code: number;
if (!created.ok) {
  const why = `cannot create a network namespace (ip netns add: ${created.err || 'failed'}; it needs root): the KubeRay suite is skipped`;
  console.log(`# test:kuberay: ${why}`);
  const r = spawnSync(process.execPath, testArgs, { cwd: repo, stdio: 'inherit', env: { ...process.env, SG_KUBERAY_SKIP: why } });
  code = r.status ?? 1;
  console.log(`# test:kuberay: SKIPPED: ${why}`);
} else {
  try {
    const up = ip('-n', ns, 'link', 'set', 'lo', 'up');
    if (!up.ok) throw new Error(`cannot bring lo up in ${ns}: ${up.err}`);
    console.log(`# test:kuberay: network namespace ${ns} (only lo)`);
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, ...testArgs], {
      cwd: repo,
      stdio: 'inherit',
      env: { ...process.env, SG_KUBERAY_NETNS: ns },
    });
    code = r.status ?? 1;
  } finally {
    // Whatever a killed test left running in the namespace goes with it.
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /^\d+$/.test(l));
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    ip('netns', 'del', ns);
  }
}
process.exit(code);

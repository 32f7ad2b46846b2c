// Child process of test/state-durability.test.ts: records changes of app
// "llm" through a FileStateStore (green 10, 20, …) and, right after the audit
// entry of change N is fsynced (before its state file is written), prints
// "AUDITED" and blocks until the parent kills it with SIGKILL.
//   node test/helpers/state-commit-child.ts STATE_DIR N
import * as nodeFs from 'node:fs';
import { FileStateStore, type StateFs } from '../../src/control/state-store.ts';
import { applyWeights, emptyTrafficState } from '../../src/control/traffic-state.ts';

const [dir, nRaw] = process.argv.slice(2);
const n = Number(nRaw);
if (dir === undefined || !Number.isInteger(n) || n < 1 || n > 9) throw new Error('usage: state-commit-child.ts STATE_DIR N (1..9)');

const auditFds = new Set<number>();
let auditSyncs = 0;
const fs: StateFs = {
  ...(nodeFs as unknown as StateFs),
  openSync(path, flags, mode) {
    const fd = nodeFs.openSync(path, flags, mode);
    if (path.endsWith('audit.jsonl')) auditFds.add(fd);
    return fd;
  },
  closeSync(fd) {
    auditFds.delete(fd);
    nodeFs.closeSync(fd);
  },
  fsyncSync(fd) {
    nodeFs.fsyncSync(fd);
    if (auditFds.has(fd) && ++auditSyncs === n) {
      nodeFs.writeSync(1, 'AUDITED\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // until SIGKILL
    }
  },
};

const store = new FileStateStore(dir, { fs });
let state = emptyTrafficState();
for (let i = 1; i <= n; i++) {
  const from = state.apps['llm']?.weights ?? null;
  state = applyWeights(state, 'llm', { blue: 100 - 10 * i, green: 10 * i });
  store.commit(state, {
    at: new Date().toISOString(),
    actor: 'test',
    app: 'llm',
    action: 'set_weights',
    from,
    to: state.apps['llm']!.weights,
    reason: `change ${i}`,
    result: 'ok',
    version: state.version,
  });
}

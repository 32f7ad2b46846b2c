// Micro-benchmarks behind core/socket-write.ts and the hot modules' `node:buffer` /
// `node:perf_hooks` imports (docs/benchmarks.md, "Eighth session"):
//
// - writes: CPU per 200-byte write to a loopback peer that reads (a child process), through
//   socket.write(), through the handle's writeBuffer() with a new WriteWrap each time, and with one
//   WriteWrap reused (what directWrite does while writes complete at once);
// - globals: `performance.now()` and `Buffer.allocUnsafe()` read as globals (accessor properties
//   of globalThis in Node 24) against the same names imported from their modules.
//
//   taskset -c 1 node bench/write-path.ts [--rounds 3] [--writes 200000]
//
// The reader runs on CPU 0 when taskset is there. CPU per write is this process's user + system
// time over the writes (so the write syscall is in it), not wall time.
import { spawn, spawnSync } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Buffer as ImportedBuffer } from 'node:buffer';
import { performance as importedPerformance } from 'node:perf_hooks';

const self = fileURLToPath(import.meta.url);

if (process.argv.includes('--reader')) {
  const server = createServer((s) => s.on('data', () => {}));
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as { port: number }).port}\n`));
} else {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, writes: { type: 'string', default: '200000' } } });
  const rounds = Number(values.rounds);
  const writes = Number(values.writes);
  await writesBench(rounds, writes);
  globalsBench(rounds);
}

interface Req {
  oncomplete: () => void;
}
interface Handle {
  writeBuffer(req: Req, b: Buffer): number;
}

async function writesBench(rounds: number, n: number): Promise<void> {
  const { WriteWrap, streamBaseState, kLastWriteWasAsync } = (process as unknown as { binding(n: string): { WriteWrap: new () => Req; streamBaseState: Int32Array; kLastWriteWasAsync: number } }).binding('stream_wrap');
  const args = [process.execPath, self, '--reader'];
  const pinned = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  const reader = pinned ? spawn('taskset', ['-c', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(reader.stdout, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  const bufs: Buffer[] = [];
  for (let i = 0; i < 64; i++) bufs.push(Buffer.alloc(200, 97 + (i % 20)));
  const run = async (mode: string): Promise<number> => {
    const s: Socket = connect(port, '127.0.0.1');
    await once(s, 'connect');
    const h = (s as unknown as { _handle: Handle })._handle;
    let reused: Req | null = null;
    const write = (b: Buffer): void => {
      if (mode === 'socket.write()') {
        s.write(b);
        return;
      }
      let req: Req;
      if (mode === 'writeBuffer, new WriteWrap') {
        req = new WriteWrap();
        req.oncomplete = () => {};
      } else {
        if (reused === null) {
          reused = new WriteWrap();
          reused.oncomplete = () => {};
        }
        req = reused;
      }
      if (h.writeBuffer(req, b) !== 0) throw new Error('write failed');
      if (streamBaseState[kLastWriteWasAsync] !== 0) reused = null;
    };
    let i = 0;
    const c0 = process.cpuUsage();
    await new Promise<void>((done) => {
      const batch = (): void => {
        for (let k = 0; k < 50; k++, i++) write(bufs[i & 63]!);
        if (i < n) setImmediate(batch);
        else done();
      };
      batch();
    });
    const c = process.cpuUsage(c0);
    s.destroy();
    return ((c.user + c.system) * 1000) / n;
  };
  const modes = ['socket.write()', 'writeBuffer, new WriteWrap', 'writeBuffer, one WriteWrap reused'];
  const results = new Map<string, number[]>(modes.map((m) => [m, []]));
  await run(modes[0]!); // warm-up
  for (let r = 0; r < rounds; r++) for (const m of modes) results.get(m)!.push(await run(m));
  reader.kill();
  console.log('200-byte writes to a reading loopback peer, ns of CPU per write (each round):');
  for (const [m, v] of results) console.log(`  ${m.padEnd(36)} ${v.map((x) => x.toFixed(0)).join('  ')}`);
}

function globalsBench(rounds: number): void {
  let sink = 0;
  const cases: [string, (n: number) => void][] = [
    ['performance.now(), global', () => (sink += performance.now())],
    ['performance.now(), imported', () => (sink += importedPerformance.now())],
    ['Buffer.allocUnsafe(100), global', (n) => (sink += Buffer.allocUnsafe(n).length)],
    ['Buffer.allocUnsafe(100), imported', (n) => (sink += ImportedBuffer.allocUnsafe(n).length)],
  ];
  console.log('globals against imports, ns per call (each round):');
  const out = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  for (let r = 0; r <= rounds; r++) {
    for (const [name, fn] of cases) {
      const n = 5e6;
      const t = process.hrtime.bigint();
      for (let i = 0; i < n; i++) fn(100);
      if (r > 0) out.get(name)!.push(Number(process.hrtime.bigint() - t) / n);
    }
  }
  for (const [name, v] of out) console.log(`  ${name.padEnd(36)} ${v.map((x) => x.toFixed(1)).join('  ')}`);
  if (sink === 42) console.log('');
}

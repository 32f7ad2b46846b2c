// How many CPUs this process may use, for `workers: auto`: the CPUs it may run
// on (os.availableParallelism(): the affinity mask; Node 24's libuv also
// applies a cgroup CPU quota of one CPU or more, rounded down), capped by the
// cgroup v2 quota read here too, so that the cap holds whatever libuv does (a
// Kubernetes CPU limit of 2 on a 64-core node is 2, not 64; below one CPU, 1).
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** The cgroup v2 quota in CPUs from a cpu.max line ("200000 100000" → 2), or null for "max" or garbage. */
export function quotaCpus(cpuMax: string): number | null {
  const [quota, period] = cpuMax.trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return null;
  const q = Number(quota);
  const p = Number(period ?? '100000');
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return null;
  return Math.max(1, Math.ceil(q / p));
}

export function usableCpus(cpuMaxPath = '/sys/fs/cgroup/cpu.max'): number {
  const cpus = Math.max(1, availableParallelism());
  let text: string;
  try {
    text = readFileSync(cpuMaxPath, 'utf8');
  } catch {
    return cpus; // no cgroup v2 CPU controller here: the affinity mask decides
  }
  const quota = quotaCpus(text);
  return quota === null ? cpus : Math.min(cpus, quota);
}

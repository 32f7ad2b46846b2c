import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { quotaCpus, usableCpus } from './cpus.ts';

test('a cgroup v2 cpu.max line gives the quota in whole CPUs, rounded up; "max" none', () => {
  assert.equal(quotaCpus('200000 100000\n'), 2);
  assert.equal(quotaCpus('150000 100000'), 2);
  assert.equal(quotaCpus('50000 100000'), 1);
  assert.equal(quotaCpus('max 100000\n'), null);
  assert.equal(quotaCpus(''), null);
  assert.equal(quotaCpus('lots 100000'), null);
});

test('workers: auto is capped by the container CPU limit, and is the CPU count without one', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-cpus-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'cpu.max');
  writeFileSync(file, '100000 100000\n');
  assert.equal(usableCpus(file), 1);
  writeFileSync(file, 'max 100000\n');
  assert.equal(usableCpus(file), availableParallelism());
  assert.equal(usableCpus(join(dir, 'missing')), availableParallelism());
});

// File mode: one gateway per state_dir. A second gateway process started on the
// state_dir of a running one is refused with one line naming the holder, and
// serves nothing; once the first has stopped (or was killed), it starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startGateway } from '../src/main.ts';
import { LogRecorder, buildConfig, gatewayDoc, startSimOnly } from './helpers/stack.ts';

function runCli(configPath: string, timeoutMs: number): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['src/cli/main.ts', 'start', '--config', configPath, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, stderr, stdout });
    });
  });
}

test('a second gateway on the same state_dir is refused with one line, and starts once the first is gone', { timeout: 120_000 }, async () => {
  const sim = await startSimOnly();
  const stateDir = mkdtempSync(join(tmpdir(), 'sg-lock-it-'));
  const configPath = join(stateDir, '..', `${stateDir.split('/').pop()}.yaml`);
  try {
    const doc = gatewayDoc(sim, stateDir);
    writeFileSync(configPath, stringify(doc));
    const first = await startGateway({ config: buildConfig(doc), logger: new LogRecorder(), adminToken: 'test-token', watch: false });
    let second: Awaited<ReturnType<typeof runCli>>;
    try {
      second = await runCli(configPath, 60_000);
    } finally {
      await first.close();
    }
    assert.equal(second.code, 1, `exit code; stderr: ${second.stderr}`);
    const lines = second.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line, no stack trace: ${second.stderr}`);
    assert.match(lines[0]!, new RegExp(`^serve-gateway: state_dir ${stateDir} is in use by another gateway \\(pid ${process.pid} on host [^,]+, last heartbeat \\d+ s ago\\)`));
    assert.doesNotMatch(second.stderr, /listening on/);

    // The first one released the lock on close: a new gateway starts (and is stopped at once).
    const third = await startGateway({ config: buildConfig(doc), logger: new LogRecorder(), adminToken: 'test-token', watch: false });
    await third.close();
  } finally {
    await sim.close();
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(configPath, { force: true });
  }
});

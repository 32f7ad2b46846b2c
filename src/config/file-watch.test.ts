import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { watchConfigFile } from './file-watch.ts';

const dir = mkdtempSync(join(tmpdir(), 'gw-watch-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Resolves on the next onChange, or rejects after `ms` (a guard, not a sleep). */
function changeSignal(ms = 5_000) {
  let fire: () => void = () => {};
  const waitNext = () =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no change event')), ms);
      fire = () => {
        clearTimeout(t);
        resolve();
      };
    });
  return { onChange: () => fire(), waitNext };
}

describe('watchConfigFile', () => {
  it('fires once per content change, including a rename-over replace', async () => {
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, 'a: 1\n');
    let calls = 0;
    const sig = changeSignal();
    const stop = watchConfigFile(
      file,
      () => {
        calls++;
        sig.onChange();
      },
      { debounceMs: 20 },
    );
    try {
      let next = sig.waitNext();
      writeFileSync(file, 'a: 2\n');
      writeFileSync(file, 'a: 3\n'); // debounced into one reload
      await next;
      assert.equal(calls, 1);

      // Editors write a temp file and rename it over the original.
      next = sig.waitNext();
      writeFileSync(join(dir, '.gateway.yaml.swp'), 'a: 4\n');
      renameSync(join(dir, '.gateway.yaml.swp'), file);
      await next;
      assert.equal(calls, 2);

      // Other files in the directory do not trigger a reload.
      next = sig.waitNext();
      writeFileSync(join(dir, 'other.txt'), 'x');
      writeFileSync(file, 'a: 5\n');
      await next;
      assert.equal(calls, 3);
    } finally {
      stop();
    }
  });

  it('watches extra files (serve_config) and stops cleanly', async () => {
    const file = join(dir, 'gw2.yaml');
    const serve = join(dir, 'serve2.yaml');
    writeFileSync(file, 'x: 1\n');
    writeFileSync(serve, 'applications: []\n');
    const sig = changeSignal();
    let calls = 0;
    const stop = watchConfigFile(
      file,
      () => {
        calls++;
        sig.onChange();
      },
      { debounceMs: 10, extraFiles: [serve] },
    );
    const next = sig.waitNext();
    writeFileSync(serve, 'applications: [{name: a, import_path: a:b}]\n');
    await next;
    assert.equal(calls, 1);
    stop();
    stop(); // idempotent
  });
});

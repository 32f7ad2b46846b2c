// Watches the config file for hot reload. The directory is watched, not the
// file: editors and `kubectl` ConfigMap updates replace the file (rename or
// symlink swap), which a file watch would miss. Events are debounced and
// onChange fires only when the content actually changed.
import { createHash } from 'node:crypto';
import { readFileSync, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { systemClock } from '../core/clock.ts';
import type { Clock, TimerHandle } from '../core/clock.ts';

export interface WatchOptions {
  /** Quiet time after the last event before onChange runs (default 200 ms). */
  readonly debounceMs?: number;
  readonly clock?: Clock;
  /** Also react to changes of these files (e.g. serve_config files), resolved like `path`. */
  readonly extraFiles?: readonly string[];
  readonly onError?: (err: Error) => void;
}

/** Calls onChange (debounced) when the file's content changes. Returns a stop function. */
export function watchConfigFile(path: string, onChange: () => void, opts: WatchOptions = {}): () => void {
  const debounceMs = opts.debounceMs ?? 200;
  const clock = opts.clock ?? systemClock;
  const files = [resolve(path), ...(opts.extraFiles ?? []).map((p) => resolve(p))];
  const hashes = new Map<string, string | null>(files.map((f) => [f, contentHash(f)]));
  const byDir = new Map<string, Set<string>>();
  for (const f of files) {
    const dir = dirname(f);
    let names = byDir.get(dir);
    if (!names) byDir.set(dir, (names = new Set()));
    names.add(basename(f));
    // Kubernetes ConfigMap volumes swap a "..data" symlink; any event on it counts.
    names.add('..data');
  }

  let timer: TimerHandle | null = null;
  let stopped = false;
  const fire = () => {
    timer = null;
    if (stopped) return;
    let changed = false;
    for (const f of files) {
      const h = contentHash(f);
      if (h === null) continue; // mid-replace or deleted: wait for the next event
      if (h !== hashes.get(f)) {
        hashes.set(f, h);
        changed = true;
      }
    }
    if (changed) onChange();
  };
  const poke = () => {
    if (stopped) return;
    if (timer !== null) clock.clearTimeout(timer);
    timer = clock.setTimeout(fire, debounceMs);
  };

  const watchers: FSWatcher[] = [];
  for (const [dir, names] of byDir) {
    try {
      const w = watch(dir, { persistent: false }, (_event, filename) => {
        if (filename === null || names.has(filename.toString())) poke();
      });
      w.on('error', (err) => opts.onError?.(err));
      watchers.push(w);
    } catch (err) {
      opts.onError?.(err as Error);
    }
  }

  return () => {
    stopped = true;
    if (timer !== null) clock.clearTimeout(timer);
    timer = null;
    for (const w of watchers) w.close();
  };
}

function contentHash(path: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return null;
  }
}

// Where the gateway writes (state_dir, kubernetes.last_known_good), and a check
// at start that it can. [adapter: node:fs, process.env]
//
// SERVE_GATEWAY_STATE_DIR, when set, is the default state_dir and the base of
// relative state paths (state_dir, kubernetes.last_known_good); without it they
// resolve against the config file's directory (default ./var). The container
// image sets it to its writable volume, /var/lib/serve-gateway, so a config
// mounted read-only at /etc/serve-gateway with `state_dir: ./var` (or none)
// writes under the volume, not next to the config (docs/configuration.md).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { GatewayConfig } from './types.ts';

export const STATE_DIR_ENV = 'SERVE_GATEWAY_STATE_DIR';

/** The state base from the environment (absolute), or null when unset or empty. */
export function stateBaseFromEnv(env: NodeJS.ProcessEnv = process.env): string | null {
  const v = env[STATE_DIR_ENV];
  return v === undefined || v.trim() === '' ? null : resolve(v.trim());
}

/**
 * Null when every directory the gateway writes to exists (created if need be)
 * and takes a file; else one line saying which path, why, and what to do.
 */
export function stateWriteProblem(config: GatewayConfig, env: NodeJS.ProcessEnv = process.env): string | null {
  const dirs: Array<[string, string]> = [['state_dir', config.stateDir]];
  if (config.kubernetes !== null) dirs.push(['kubernetes.last_known_good', dirname(config.kubernetes.lastKnownGood)]);
  for (const [key, dir] of dirs) {
    const err = probe(dir);
    if (err === null) continue;
    const base = stateBaseFromEnv(env);
    const hint =
      base === null
        ? `set ${key} to a writable directory, or set ${STATE_DIR_ENV} to one (relative state paths then resolve against it)`
        : `${STATE_DIR_ENV}=${base} must be a writable directory (the container image mounts one there), or set ${key} to an absolute writable path`;
    return `cannot write ${key} ${key === 'state_dir' ? dir : config.kubernetes!.lastKnownGood} (${err}): ${hint}`;
  }
  return null;
}

/** Creates `dir` if needed and writes and removes a probe file there; the error code and path, or null. */
function probe(dir: string): string | null {
  const file = join(dir, `.write-check-${process.pid}`);
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, '');
    rmSync(file, { force: true });
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return `${e.code ?? 'error'}${e.path && e.path !== file && e.path !== dir ? ` at ${e.path}` : ''}`;
  }
}

// `serve-gateway sim --config FILE`: runs simulated Ray Serve clusters until
// SIGINT/SIGTERM (or `signal` aborts), then closes every listener.
import { loadSimConfig, SimConfigError, startSim } from './sim.ts';
import type { Sim } from './sim.ts';

export const SIM_USAGE = `usage: serve-gateway sim [--config FILE]

Runs simulated Ray Serve clusters (Serve proxies, dashboards, a control API)
as described by FILE (default: config/sim.yaml). See docs/simulator.md.

options:
  --config FILE   sim configuration (YAML)
  -h, --help      show this help
`;

export interface SimCommandIo {
  readonly out?: (line: string) => void;
  readonly err?: (line: string) => void;
  /** Stops the sim like a signal would (tests). */
  readonly signal?: AbortSignal;
  /** Called once the sim listens (tests). */
  readonly onStarted?: (sim: Sim) => void;
}

export async function runSimCommand(args: string[], io: SimCommandIo = {}): Promise<number> {
  const out = io.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const err = io.err ?? ((l: string) => process.stderr.write(`${l}\n`));
  let configPath = 'config/sim.yaml';
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '-h' || a === '--help') {
      out(SIM_USAGE.trimEnd());
      return 0;
    }
    if (a === '--config' || a === '-c') {
      const v = args[i + 1];
      if (v === undefined) {
        err('sim: --config needs a file');
        return 2;
      }
      configPath = v;
      i++;
    } else if (a.startsWith('--config=')) {
      configPath = a.slice('--config='.length);
    } else {
      err(`sim: unknown argument "${a}"\n${SIM_USAGE.trimEnd()}`);
      return 2;
    }
  }

  let sim: Sim;
  try {
    sim = await startSim(loadSimConfig(configPath));
  } catch (e) {
    if (e instanceof SimConfigError) {
      err(`sim: invalid config ${configPath}:`);
      for (const line of e.message.split('\n')) err(`  ${line}`);
      return 1;
    }
    err(`sim: ${(e as Error).message}`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      io.signal?.removeEventListener('abort', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    // Announced once the handlers are in place: a signal right after these lines stops cleanly.
    for (const line of sim.addresses()) out(line);
    io.onStarted?.(sim);
    if (io.signal?.aborted) stop();
    else io.signal?.addEventListener('abort', stop);
  });
  await sim.close();
  out('sim: stopped');
  return 0;
}

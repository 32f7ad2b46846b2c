// `serve-gateway start`: load and validate the config, run the gateway, drain on SIGTERM/SIGINT.
import { pino } from 'pino';
import { loadConfigFile, formatIssues } from '../config/load.ts';
import { stateWriteProblem } from '../config/state-dir.ts';
import type { Logger } from '../core/log.ts';
import { startGateway, stdoutAccessLog } from '../main.ts';

const HELP = `Usage: serve-gateway start [--config FILE] [--log-level info|debug|warn]

Runs the gateway with FILE (default config/gateway.yaml). The config is checked
as a whole first; a bad file is refused with every problem listed (exit 1).
Reload: edit the file (watched), send SIGHUP, or POST /api/v1/reload.
Stop: SIGTERM or Ctrl-C drains (readyz fails, in-flight requests finish).
`;

export async function runStartCommand(args: string[]): Promise<number> {
  let configPath = 'config/gateway.yaml';
  let level = process.env['LOG_LEVEL'] ?? 'info';
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      return 0;
    } else if (a === '--config' || a === '-c') configPath = args[++i] ?? '';
    else if (a.startsWith('--config=')) configPath = a.slice(9);
    else if (a === '--log-level') level = args[++i] ?? 'info';
    else {
      process.stderr.write(`serve-gateway start: unknown argument "${a}"\n\n${HELP}`);
      return 2;
    }
  }
  const result = await loadConfigFile(configPath);
  if (!result.ok) {
    process.stderr.write(`serve-gateway: invalid config, not starting:\n${formatIssues(result.issues)}\n`);
    return 1;
  }
  // A state directory the gateway cannot write (a read-only config dir, a volume
  // missing) is said in one line, before anything starts.
  const problem = stateWriteProblem(result.config);
  if (problem !== null) {
    process.stderr.write(`serve-gateway: not starting: ${problem}\n`);
    return 1;
  }
  // Operational logs are written as they happen; access-log lines are built by
  // hand and written to stdout in batches (src/proxy/access-log.ts).
  const dest = pino.destination({ sync: false });
  const logger = pino({ name: 'serve-gateway', level }, dest) as unknown as Logger;
  const access = stdoutAccessLog();
  let gw: Awaited<ReturnType<typeof startGateway>>;
  try {
    gw = await startGateway({ config: result.config, configPath, logger, accessLog: access.accessLog, workerAccessLog: 'stdout', workerLogLevel: level });
  } catch (err) {
    // An operating-system refusal (a port in use, a path not allowed) is one line, not a stack trace.
    const e = err as NodeJS.ErrnoException;
    if (typeof e?.code !== 'string' || !/^E[A-Z]+$/.test(e.code)) throw err;
    access.stop();
    dest.flushSync();
    process.stderr.write(`serve-gateway: not starting: ${e.message}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      logger.info({ signal }, 'shutting down');
      gw.shutdown().then(resolve, resolve);
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    // Announced once the handlers are in place: a SIGTERM right after this line drains, not kills.
    process.stderr.write(`serve-gateway listening on ${gw.url} (admin ${gw.adminUrl})\n`);
  });
  access.stop();
  dest.flushSync();
  return 0;
}

// serve-gateway command line (SPEC §3). Each subcommand lives in its own
// module, imported only when that command runs: `--version` and `traffic`
// must not load the gateway (fastify, pino, the Kubernetes client) to print
// a line or a table. This file only dispatches and prints help.

export const HELP = `serve-gateway — an edge gateway for Ray Serve on Kubernetes

Usage:
  serve-gateway start    [--config FILE]     run the gateway (default config/gateway.yaml)
  serve-gateway validate [--config FILE] [--json] [--live]
                                             check a config; print routes and capacities
                                             (--live: kubernetes mode, read the RayServices too)
  serve-gateway sim      [--config FILE]     run simulated Ray Serve clusters (default config/sim.yaml)
  serve-gateway traffic status [--watch]     split, health, rollouts (gate values, why a
                                             rollout holds) and capacity of every app
  serve-gateway traffic set APP CLUSTER=WEIGHT... [--force]
                                             set weights at once (atomic when one cluster gets 100)
  serve-gateway traffic rollout APP --to CLUSTER [--steps 5,25,50,100] [--interval 30s] [--force]
                                             start a progressive shift
  serve-gateway traffic pause|resume|promote|rollback APP
  serve-gateway traffic move FROM TO [--rollout]
                                             every app's weight from cluster FROM to TO
  serve-gateway traffic events [--limit N]   the audit log, newest first

traffic options: --admin URL (default http://127.0.0.1:9901), --json; the token comes from
SERVE_GATEWAY_ADMIN_TOKEN. Run 'serve-gateway COMMAND --help' for a command's options.
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
  switch (cmd) {
    case 'start':
      return (await import('./start-command.ts')).runStartCommand(rest);
    case 'validate':
      return (await import('../config/validate-command.ts')).runValidateCommand(rest, out, async (config) => {
        const { liveCheck, renderLiveReport } = await import('../kubernetes/live-check.ts');
        const r = await liveCheck(config);
        return { ok: r.ok, text: renderLiveReport(r), json: r };
      });
    case 'sim':
      return (await import('../sim/sim-command.ts')).runSimCommand(rest);
    case 'traffic':
      return (await import('./traffic-command.ts')).runTrafficCommand(rest, out);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      out(HELP);
      return cmd === undefined ? 2 : 0;
    case '--version':
      out('serve-gateway 0.1.0');
      return 0;
    default:
      process.stderr.write(`serve-gateway: unknown command "${cmd}"\n\n${HELP}`);
      return 2;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      // An error that says `expose` is the whole story for the operator (one line, no stack).
      const e = err as Error & { expose?: boolean };
      process.stderr.write(`serve-gateway: ${e.expose === true ? e.message : (e.stack ?? String(err))}\n`);
      process.exitCode = 1;
    },
  );
}

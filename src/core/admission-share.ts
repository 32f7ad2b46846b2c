// One gateway replica's share of a Serve app's capacity (SPEC §5): the
// capacity (max_ongoing_requests × replicas) divided by the gateway replicas,
// rounded down, so the replicas together never admit more than Serve can take;
// at least 1, so a scale-from-zero app can still start. Used by the runtime
// (control/snapshot.ts) and by `validate` (config/validate-command.ts), so both
// print and enforce the same number. [pure]
export function perGatewayLimit(capacity: number, gatewayReplicas: number): number {
  return Math.max(1, Math.floor(capacity / Math.max(1, gatewayReplicas)));
}

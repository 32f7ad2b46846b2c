// Endpoint choice within a cluster: least in-flight among available
// endpoints, ties broken round-robin from a moving cursor so equal endpoints
// share load. Endpoint lists are short (Serve proxies of one cluster). [pure]

export interface Pickable {
  readonly inFlight: number;
}

/**
 * Index of the endpoint to use, or -1 when none is available. `exclude` is an
 * index already tried for this request (-1 for none).
 */
export function pickEndpoint<E extends Pickable>(
  endpoints: readonly E[],
  available: (e: E) => boolean,
  cursor: number,
  exclude: number,
): number {
  const n = endpoints.length;
  let best = -1;
  let bestLoad = Infinity;
  for (let k = 0; k < n; k++) {
    const i = (cursor + k) % n;
    if (i === exclude) continue;
    const e = endpoints[i]!;
    if (e.inFlight < bestLoad && available(e)) {
      best = i;
      bestLoad = e.inFlight;
    }
  }
  if (best === -1 && exclude !== -1 && exclude < n && available(endpoints[exclude]!)) return exclude;
  return best;
}

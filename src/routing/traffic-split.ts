// Picks the cluster for one request from an app's integer weights. [pure]
//
// The split lays the clusters on a 0..100 line in config order; each cluster
// owns the half-open range [lo, hi) of its cumulative weight. A request's
// point on that line picks the cluster: non-sticky requests use a fresh
// random point, sticky ones a stable hash of their key (see stickyPoint).
//
// Why sticky cohorts only grow: with two clusters in fixed order A, B the
// ranges are A = [0, wA) and B = [wA, 100). Moving weight from A to B lowers
// wA, so B's range only widens and a key already on B stays on B. The same
// holds in the other direction (B → A widens A's range). With three or more
// clusters this holds for weight moved between neighbours in config order;
// a rollout always moves weight between exactly two clusters and the others
// are at 0 (empty ranges), so they are neighbours on the line.

/** Integer weights by cluster name, summing to 100. */
export type Weights = Readonly<Record<string, number>>;

export interface Split {
  /** Cluster names in config order. */
  readonly clusters: readonly string[];
  /** Integer weights, same order as `clusters`, summing to 100. */
  readonly weights: readonly number[];
}

/**
 * Builds a split from a weights record, listing clusters in `clusterOrder`
 * (the config's order, which keeps sticky cohorts stable). Clusters missing
 * from the record get 0. Weights must already be validated
 * (traffic-state.ts `validateWeights`); invalid input is a bug and throws.
 */
export function buildSplit(
  clusterOrder: readonly string[],
  weightsRecord: Weights,
): Split {
  const weights: number[] = [];
  let sum = 0;
  for (const name of clusterOrder) {
    const w = weightsRecord[name] ?? 0;
    if (!Number.isInteger(w) || w < 0 || w > 100) {
      throw new RangeError(`weight for cluster "${name}" must be an integer 0..100, got ${String(w)}`);
    }
    weights.push(w);
    sum += w;
  }
  for (const name of Object.keys(weightsRecord)) {
    if (!clusterOrder.includes(name)) throw new RangeError(`weight for unknown cluster "${name}"`);
  }
  if (sum !== 100) throw new RangeError(`weights must sum to 100, got ${sum}`);
  return { clusters: [...clusterOrder], weights };
}

/**
 * Index of the cluster whose cumulative range [lo, hi) contains `point`
 * (0 <= point < 100). Zero-weight clusters own an empty range and are never
 * picked. A point outside [0, 100) is clamped to the first / last cluster
 * with weight. Returns -1 only for a split with no weight at all.
 */
export function pickCluster(split: Split, point: number): number {
  const weights = split.weights;
  // Gateway API mode: an HTTPRoute rule's weights are raw (70/30, 1/1, ...): scale the point.
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i]!;
  if (total !== 100) point = (point * total) / 100;
  let hi = 0;
  let lastNonZero = -1;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!;
    if (w === 0) continue;
    hi += w;
    lastNonZero = i;
    if (point < hi) return i;
  }
  return lastNonZero;
}

/**
 * The point on the 0..100 line for a request: the sticky key's stable hash
 * when there is a key, else `random01 * 100` (random01 in [0, 1)).
 */
export function splitPoint(stickyKey: string | null, random01: number): number {
  return stickyKey === null ? random01 * 100 : stickyPoint(stickyKey);
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * Stable hash of a sticky key mapped uniformly into [0, 100), with
 * fractional precision. FNV-1a 32-bit over the key's UTF-16 code units (the
 * same as over bytes for ASCII keys), then murmur3's fmix32 finaliser so
 * that near-identical keys ("user-1", "user-2") spread over the whole line.
 * No seed: the same key lands on the same point in every process and after
 * every restart.
 */
export function stickyPoint(key: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return ((h >>> 0) / 4294967296) * 100;
}

/**
 * The value of cookie `name` in a Cookie header ("a=1; b=2"), or null when
 * absent or empty. Scans with indexOf (no regex, no allocation beyond the
 * result); a value in double quotes is unquoted. The first matching cookie
 * wins, as in browsers' most-specific-path-first order.
 */
export function stickyKeyFromCookieHeader(cookieHeader: string | undefined, name: string): string | null {
  if (cookieHeader === undefined || cookieHeader === '' || name === '') return null;
  const len = cookieHeader.length;
  let start = 0;
  while (start < len) {
    let end = cookieHeader.indexOf(';', start);
    if (end === -1) end = len;
    // Skip leading whitespace of this pair.
    let p = start;
    while (p < end && (cookieHeader.charCodeAt(p) === 32 || cookieHeader.charCodeAt(p) === 9)) p++;
    if (end - p > name.length && cookieHeader.startsWith(name, p)) {
      let q = p + name.length;
      while (q < end && (cookieHeader.charCodeAt(q) === 32 || cookieHeader.charCodeAt(q) === 9)) q++;
      if (q < end && cookieHeader.charCodeAt(q) === 61 /* = */) {
        let vs = q + 1;
        let ve = end;
        while (vs < ve && (cookieHeader.charCodeAt(vs) === 32 || cookieHeader.charCodeAt(vs) === 9)) vs++;
        while (ve > vs && (cookieHeader.charCodeAt(ve - 1) === 32 || cookieHeader.charCodeAt(ve - 1) === 9)) ve--;
        if (ve - vs >= 2 && cookieHeader.charCodeAt(vs) === 34 && cookieHeader.charCodeAt(ve - 1) === 34) {
          vs++;
          ve--;
        }
        return ve > vs ? cookieHeader.slice(vs, ve) : null;
      }
    }
    start = end + 1;
  }
  return null;
}

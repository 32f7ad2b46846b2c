// A data-plane worker thread that dies, as an uncaught error would kill it, the first time it
// holds admission permits (requests in flight at Serve). Only the first thread started while
// CRASH_MARKER names a file that does not exist yet crashes; it creates the file, so the thread
// the pool starts in its place runs normally. test/workers.test.ts uses it.
import { existsSync, writeFileSync } from 'node:fs';
const { plane } = await import('../../src/workers/thread.ts');
const marker = process.env['CRASH_MARKER'];
if (marker !== undefined && !existsSync(marker)) {
  writeFileSync(marker, 'crashed once\n');
  const timer = setInterval(() => {
    // Requests dispatched to Serve hold admission permits.
    if ([...plane.reconciler.clusters.values()].some((c) => c.inFlight >= 1)) {
      clearInterval(timer);
      throw new Error('worker crash drill');
    }
  }, 5);
}

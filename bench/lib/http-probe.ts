// Readiness probes for the bench harness (plain node:http, no keep-alive).
import http from 'node:http';
import net from 'node:net';

export type ProbeResult = { readonly status: number; readonly body: string; readonly headers: http.IncomingHttpHeaders };

export function request(port: number, method: string, path: string, body: string | null, timeoutMs = 2000): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { connection: 'close' };
    if (body !== null) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => {
        if (data.length < 4096) data += s;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data, headers: res.headers }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(500, () => {
      s.destroy();
      resolve(false);
    });
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `check` every 100 ms until it returns null (ready) or `timeoutMs` passes, or `dead()`
 * says the process has exited. Returns null when ready, else the last reason.
 */
export async function waitReady(
  check: () => Promise<string | null>,
  timeoutMs: number,
  dead: () => string | null,
): Promise<string | null> {
  const until = Date.now() + timeoutMs;
  let last = 'not tried';
  while (Date.now() < until) {
    const d = dead();
    if (d !== null) return d;
    try {
      const r = await check();
      if (r === null) return null;
      last = r;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await sleep(100);
  }
  return `not ready after ${timeoutMs} ms: ${last}`;
}

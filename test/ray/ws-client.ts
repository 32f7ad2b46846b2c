// WebSocket clients for the real-Ray tests: Node's global WebSocket (undici's),
// the client a browser-like caller would use, plus a raw HTTP upgrade to read
// the status and headers of a refused handshake (the WebSocket API hides them).
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';

// Default timeouts are sized for a busy 2-core CI machine (two Ray clusters and
// the gateway on it), not for a typical run; a timeout message says what the
// client saw (socket state, messages so far) so a CI log alone explains it.
const OPEN_TIMEOUT_MS = 30_000;
const MESSAGE_TIMEOUT_MS = 15_000;
const UPGRADE_TIMEOUT_MS = 15_000;

const STATES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
function stateOf(ws: WebSocket): string {
  return STATES[ws.readyState] ?? String(ws.readyState);
}

export interface WsConn {
  readonly ws: WebSocket;
  /** The next text message (in arrival order). */
  next(timeoutMs?: number): Promise<string>;
  /** Sends `msg` and returns the next message. */
  ask(msg: string, timeoutMs?: number): Promise<string>;
  /** Closes (code 1000) and resolves once the close handshake is done. */
  close(): Promise<CloseEvent>;
  readonly closed: Promise<CloseEvent>;
}

/** Opens `url`; rejects if the handshake fails (error/close before open) or takes longer than `timeoutMs`. */
export function openWs(url: string, timeoutMs = OPEN_TIMEOUT_MS): Promise<WsConn> {
  const ws = new WebSocket(url);
  const t0 = Date.now();
  let received = 0;
  const inbox: string[] = [];
  const waiters: Array<(m: string) => void> = [];
  ws.addEventListener('message', (ev: MessageEvent) => {
    const m = String(ev.data);
    received++;
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener('close', (ev) => resolve(ev), { once: true }));
  const next = (ms = MESSAGE_TIMEOUT_MS): Promise<string> => {
    const m = inbox.shift();
    if (m !== undefined) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`${url}: no message within ${ms} ms (socket ${stateOf(ws)}, ${received} messages received, socket created ${Date.now() - t0} ms ago)`));
      }, ms);
      const w = (x: string) => {
        clearTimeout(t);
        resolve(x);
      };
      waiters.push(w);
    });
  };
  const conn: WsConn = {
    ws,
    next,
    ask: (msg, ms) => {
      ws.send(msg);
      return next(ms);
    },
    close: () => {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000, 'done');
      return closed;
    },
    closed,
  };
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      reject(new Error(`${url}: not open within ${timeoutMs} ms (socket ${stateOf(ws)})`));
      ws.close();
    }, timeoutMs);
    ws.addEventListener('open', () => {
      clearTimeout(t);
      resolve(conn);
    }, { once: true });
    ws.addEventListener('error', () => {
      clearTimeout(t);
      reject(new Error(`${url}: handshake failed after ${Date.now() - t0} ms (socket ${stateOf(ws)})`));
    }, { once: true });
    void closed.then((ev) => {
      clearTimeout(t);
      reject(new Error(`${url}: closed before open after ${Date.now() - t0} ms (code ${ev.code}${ev.reason ? `, reason ${ev.reason}` : ''})`));
    });
  });
}

/** What a WebSocket client sees when the handshake is refused: error and close events, never open. */
export function refusedWs(url: string, timeoutMs = OPEN_TIMEOUT_MS): Promise<{ error: boolean; code: number; opened: boolean }> {
  const ws = new WebSocket(url);
  let error = false;
  let opened = false;
  ws.addEventListener('error', () => (error = true));
  ws.addEventListener('open', () => {
    opened = true;
    ws.close();
  });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      reject(new Error(`${url}: not closed within ${timeoutMs} ms (socket ${stateOf(ws)}, opened ${opened}, error event ${error})`));
      ws.close();
    }, timeoutMs);
    ws.addEventListener('close', (ev) => {
      clearTimeout(t);
      resolve({ error, code: ev.code, opened });
    }, { once: true });
  });
}

/** A raw HTTP/1.1 WebSocket handshake: the status, headers and body of a non-101 answer (101: the socket is closed at once). */
export function rawUpgrade(url: string, timeoutMs = UPGRADE_TIMEOUT_MS): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      agent: false,
      timeout: timeoutMs,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: upgrade timeout`)));
    req.on('error', reject);
    req.end();
  });
}

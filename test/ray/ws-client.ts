// WebSocket clients for the real-Ray tests: Node's global WebSocket (undici's),
// the client a browser-like caller would use, plus a raw HTTP upgrade to read
// the status and headers of a refused handshake (the WebSocket API hides them).
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';

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
export function openWs(url: string, timeoutMs = 10_000): Promise<WsConn> {
  const ws = new WebSocket(url);
  const inbox: string[] = [];
  const waiters: Array<(m: string) => void> = [];
  ws.addEventListener('message', (ev: MessageEvent) => {
    const m = String(ev.data);
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener('close', (ev) => resolve(ev), { once: true }));
  const next = (ms = 5000): Promise<string> => {
    const m = inbox.shift();
    if (m !== undefined) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`${url}: no message within ${ms} ms`));
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
      ws.close();
      reject(new Error(`${url}: not open within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.addEventListener('open', () => {
      clearTimeout(t);
      resolve(conn);
    }, { once: true });
    ws.addEventListener('error', () => {
      clearTimeout(t);
      reject(new Error(`${url}: handshake failed`));
    }, { once: true });
    void closed.then((ev) => {
      clearTimeout(t);
      reject(new Error(`${url}: closed before open (code ${ev.code})`));
    });
  });
}

/** What a WebSocket client sees when the handshake is refused: error and close events, never open. */
export function refusedWs(url: string, timeoutMs = 10_000): Promise<{ error: boolean; code: number; opened: boolean }> {
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
      ws.close();
      reject(new Error(`${url}: neither open nor closed within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.addEventListener('close', (ev) => {
      clearTimeout(t);
      resolve({ error, code: ev.code, opened });
    }, { once: true });
  });
}

/** A raw HTTP/1.1 WebSocket handshake: the status, headers and body of a non-101 answer (101: the socket is closed at once). */
export function rawUpgrade(url: string, timeoutMs = 5000): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
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

// The loopback upstream of bench/client-micro.ts: a raw node:net server answering every request
// (head + 100-byte body) with a fixed 100-byte keep-alive response.
import { createServer } from 'node:net';
const resp = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\nConnection: keep-alive\r\nKeep-Alive: timeout=90\r\n\r\n' + 'x'.repeat(100));
createServer((s) => {
  let pending = Buffer.alloc(0);
  s.on('error', () => {});
  s.on('data', (d) => {
    pending = pending.length ? Buffer.concat([pending, d]) : d;
    for (;;) {
      const e = pending.indexOf('\r\n\r\n');
      if (e === -1) return;
      const need = e + 4 + 100;
      if (pending.length < need) return;
      pending = pending.subarray(need);
      s.write(resp);
    }
  });
}).listen(18100, '127.0.0.1');

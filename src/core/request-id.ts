// Request ids for requests that arrive without one: UUID-shaped (8-4-4-4-12
// lowercase hex, version nibble 4, RFC 9562 variant bits), made of a random
// 80-bit prefix drawn once per process (and again after 2^48 ids) and a 48-bit
// counter. Unique within a process by construction and across processes by the
// prefix; about a tenth of crypto.randomUUID's cost and no entropy per request.
// They are identifiers for correlating logs, not secrets: ids from one process
// are sequential.
import { randomBytes } from 'node:crypto';

const COUNTER_SPAN = 2 ** 48;
let prefix = '';
let counter = COUNTER_SPAN;

function newPrefix(): string {
  const b = randomBytes(10);
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // variant 10xx
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-`;
}

export function newRequestId(): string {
  if (counter >= COUNTER_SPAN) {
    prefix = newPrefix();
    counter = 0;
  }
  // 2^48 + n in hex is '1' and then n as exactly 12 digits.
  return prefix + (COUNTER_SPAN + counter++).toString(16).slice(1);
}

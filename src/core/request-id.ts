// Request ids for requests that arrive without one: UUID-shaped (8-4-4-4-12
// lowercase hex, version nibble 4, RFC 9562 variant bits), made of a random
// 80-bit prefix drawn once per process (and again after 2^48 ids) and a 48-bit
// counter. Unique within a process by construction and across processes by the
// prefix; no entropy is drawn per request. They are identifiers for
// correlating logs, not secrets: ids from one process are sequential.
// Cost: one string concatenation per id (the upper 36 counter bits are
// formatted once per 4096 ids, the lower 12 come from a table).
import { randomBytes } from 'node:crypto';

const HIGH_SPAN = 2 ** 36;
const HEX3: readonly string[] = Array.from({ length: 4096 }, (_, i) => i.toString(16).padStart(3, '0'));
let prefix = '';
/** prefix + the upper 9 hex digits of the counter. */
let head = '';
let high = HIGH_SPAN;
let low = 4096;

function newPrefix(): string {
  const b = randomBytes(10);
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // variant 10xx
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-`;
}

export function newRequestId(): string {
  if (low === 4096) {
    if (high >= HIGH_SPAN) {
      prefix = newPrefix();
      high = 0;
    }
    // 2^36 + high in hex is '1' and then high as exactly 9 digits.
    head = prefix + (HIGH_SPAN + high++).toString(16).slice(1);
    low = 0;
  }
  return head + HEX3[low++]!;
}

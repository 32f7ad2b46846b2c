// Request ids for requests that arrive without one: UUID-shaped (8-4-4-4-12
// lowercase hex, version nibble 4, RFC 9562 variant bits), made of a random
// 80-bit prefix drawn once per process (and again after 2^48 ids) and a 48-bit
// counter. Unique within a process by construction and across processes by the
// prefix; no entropy is drawn per request. They are identifiers for
// correlating logs, not secrets: ids from one process are sequential.
// Cost: three byte stores and one latin1 decode per id (the upper 36 counter
// bits are formatted once per 4096 ids).
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';

const HIGH_SPAN = 2 ** 36;
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
/** The id being made: head, then the lower 12 counter bits as 3 hex digits. */
const ID = Buffer.alloc(36);
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
    ID.write(head, 0, 'latin1');
    low = 0;
  }
  // The id is made as a flat string (one latin1 decode), not a concatenation: every consumer
  // copies its characters (the heads, the access line), which would flatten it first.
  const l = low++;
  ID[33] = HEX_DIGITS[l >> 8]!;
  ID[34] = HEX_DIGITS[(l >> 4) & 15]!;
  ID[35] = HEX_DIGITS[l & 15]!;
  return (ID as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(0, 36);
}

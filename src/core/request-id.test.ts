import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newRequestId } from './request-id.ts';

test('request ids are UUID-shaped (v4 version and variant bits), unique, and count across the 4096 boundary', () => {
  const seen = new Set<string>();
  let prev = '';
  for (let i = 0; i < 20_000; i++) {
    const id = newRequestId();
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    if (prev !== '') assert.equal(Number.parseInt(id.slice(24), 16), Number.parseInt(prev.slice(24), 16) + 1, `${prev} → ${id}`);
    assert.equal(id.slice(0, 24), i === 0 ? id.slice(0, 24) : prev.slice(0, 24));
    prev = id;
    seen.add(id);
  }
  assert.equal(seen.size, 20_000);
});

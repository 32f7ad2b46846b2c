// Issue 4, must show: sticky cohorts. At 50/50 no key flips sides across
// hundreds of requests and the share of keys per side follows the weight
// within ±10 points; moving weight toward green keeps green's keys on green.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminCall, startStack, type Stack } from './helpers/stack.ts';

const KEYS = 300;
const REPEATS = 3;
const CONCURRENCY = 16;

/** Sends `REPEATS` requests per key (requests of different keys interleaved); returns the clusters each key saw. */
async function sweep(stack: Stack, headersFor: (key: string) => Record<string, string>, keys: string[], repeats = REPEATS): Promise<Map<string, Set<string>>> {
  const seen = new Map<string, Set<string>>(keys.map((k) => [k, new Set<string>()]));
  const jobs: string[] = [];
  for (let r = 0; r < repeats; r++) jobs.push(...keys);
  let next = 0;
  const failures: string[] = [];
  const worker = async () => {
    while (next < jobs.length) {
      const key = jobs[next++]!;
      const res = await fetch(`${stack.url}/llm/s`, { headers: headersFor(key) });
      await res.arrayBuffer();
      if (res.status !== 200) failures.push(`${key}: ${res.status}`);
      seen.get(key)!.add(res.headers.get('x-serve-cluster') ?? '?');
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  assert.deepEqual(failures, []);
  return seen;
}

function sides(seen: Map<string, Set<string>>) {
  const flipped = [...seen].filter(([, s]) => s.size !== 1).map(([k, s]) => `${k}: ${[...s].join('+')}`);
  const green = new Set([...seen].filter(([, s]) => s.size === 1 && s.has('green')).map(([k]) => k));
  const blue = new Set([...seen].filter(([, s]) => s.size === 1 && s.has('blue')).map(([k]) => k));
  return { flipped, green, blue };
}

const gatewayWith = (sticky: Record<string, string>) => ({
  applications: { '*': { weights: { blue: 100 } }, llm: { sticky, weights: { blue: 50, green: 50 } } },
});

test('sticky header at 50/50: no key flips, shares within ±10 points; at 25/75 green keeps its keys', async () => {
  const stack = await startStack({ gateway: gatewayWith({ header: 'x-session-id' }) });
  try {
    const keys = Array.from({ length: KEYS }, (_, i) => `session-${i}`);
    const hdr = (k: string) => ({ 'x-session-id': k });
    const at50 = sides(await sweep(stack, hdr, keys));
    const greenShare = (100 * at50.green.size) / KEYS;
    console.log(`sticky 50/50: ${KEYS} keys × ${REPEATS} requests: blue ${at50.blue.size}, green ${at50.green.size} (${greenShare.toFixed(1)}% green), flipped ${at50.flipped.length}`);
    assert.deepEqual(at50.flipped, [], 'no key saw both clusters');
    assert.ok(Math.abs(greenShare - 50) <= 10, `green share ${greenShare}% within 50 ± 10`);

    const r = await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 25, green: 75 } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const at75 = sides(await sweep(stack, hdr, keys));
    const greenShare75 = (100 * at75.green.size) / KEYS;
    const lost = [...at50.green].filter((k) => !at75.green.has(k));
    console.log(`sticky 25/75: green ${at75.green.size} (${greenShare75.toFixed(1)}%), flipped ${at75.flipped.length}, green keys lost ${lost.length}`);
    assert.deepEqual(at75.flipped, []);
    assert.deepEqual(lost, [], 'every key on green at 50/50 stays on green at 25/75');
    assert.ok(Math.abs(greenShare75 - 75) <= 10, `green share ${greenShare75}% within 75 ± 10`);

    // No key: a random point per request, so both sides are seen over 60 requests.
    const anon = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const res = await fetch(`${stack.url}/llm/anon`);
      await res.arrayBuffer();
      anon.add(res.headers.get('x-serve-cluster')!);
    }
    assert.deepEqual([...anon].sort(), ['blue', 'green']);
  } finally {
    await stack.close();
  }
});

test('sticky cookie: a session cookie pins its key the same way', async () => {
  const stack = await startStack({ gateway: gatewayWith({ cookie: 'sid' }) });
  try {
    const keys = Array.from({ length: 100 }, (_, i) => `c${i}`);
    const s = sides(await sweep(stack, (k) => ({ cookie: `theme=dark; sid=${k}; lang=en` }), keys, 2));
    console.log(`sticky cookie 50/50: 100 keys × 2: blue ${s.blue.size}, green ${s.green.size}, flipped ${s.flipped.length}`);
    assert.deepEqual(s.flipped, []);
    assert.ok(s.green.size >= 30 && s.blue.size >= 30, `both sides get keys (blue ${s.blue.size}, green ${s.green.size})`);
    // The status API reports the sticky setting.
    const status = await adminCall(stack, 'GET', '/api/v1/status', undefined, null);
    const llm = (status.json['apps'] as Array<Record<string, unknown>>).find((a) => a['name'] === 'llm')!;
    assert.deepEqual(llm['sticky'], { kind: 'cookie', name: 'sid' });
  } finally {
    await stack.close();
  }
});

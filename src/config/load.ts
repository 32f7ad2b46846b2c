// Reads the gateway YAML file, reports syntax errors with their line, then
// validates the document (schema.ts). Issues about keys of the main file carry
// the line of the offending key when it can be found.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isMap, isSeq, LineCounter, parseAllDocuments } from 'yaml';
import type { Document } from 'yaml';
import { validateConfig } from './schema.ts';
import { stateBaseFromEnv } from './state-dir.ts';
import type { ConfigIssue, ConfigResult, GatewayConfig, HostPort } from './types.ts';

/** Loads and validates a gateway config file. Never throws. */
export async function loadConfigFile(path: string): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, issues: [{ file: path, path: '', message: `cannot read the config file: ${e.code ?? e.message}` }] };
  }
  return parseConfigText(text, path, dirname(resolve(path)));
}

/**
 * Parses and validates config text; `file` names it in issues, `baseDir` resolves relative paths
 * (state paths: SERVE_GATEWAY_STATE_DIR when set, state-dir.ts).
 */
export function parseConfigText(
  text: string,
  file: string,
  baseDir: string,
  read: (p: string) => string = (p) => readFileSync(p, 'utf8'),
): ConfigResult {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const issues: ConfigIssue[] = [];
  const list = Array.isArray(docs) ? docs : [];
  for (const d of list) {
    for (const err of d.errors) {
      const pos = err.linePos?.[0] ?? (err.pos ? lineCounter.linePos(err.pos[0]) : undefined);
      issues.push({
        file,
        path: '',
        message: `YAML syntax error${pos ? ` at line ${pos.line}, column ${pos.col}` : ''}: ${firstLine(err.message)}`,
        ...(pos ? { line: pos.line } : {}),
      });
    }
  }
  if (issues.length > 0) return { ok: false, issues };
  if (list.length > 1) {
    return { ok: false, issues: [{ file, path: '', message: 'expected one YAML document, found several ("---")' }] };
  }
  const doc = list[0];
  const result = validateConfig(doc ? doc.toJS({ maxAliasCount: 1000 }) : null, file, baseDir, read, stateBaseFromEnv());
  if (result.ok || !doc) return result;
  return {
    ok: false,
    issues: result.issues.map((iss) => {
      if (iss.file !== file || iss.path === '') return iss;
      const line = lineOf(doc, lineCounter, iss.path);
      return line === null ? iss : { ...iss, line };
    }),
  };
}

/**
 * Keys a reload cannot apply: the data-plane and admin listeners are bound,
 * the state store opened and the admin token read once, at start. A reload
 * that changes one of them is refused as a whole (the running config keeps
 * serving), one issue per key, instead of saying "reloaded" and doing nothing.
 */
export function restartRequiredIssues(running: GatewayConfig, next: GatewayConfig, file: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const check = (path: string, was: string, now: string) => {
    if (was !== now) {
      issues.push({ file, path, message: `changed from ${JSON.stringify(was)} to ${JSON.stringify(now)}: this key needs a restart; the running gateway keeps ${JSON.stringify(was)} (restore it, or restart the gateway)` });
    }
  };
  check('listen', hostPort(running.listen), hostPort(next.listen));
  check('admin.listen', hostPort(running.admin.listen), hostPort(next.admin.listen));
  check('admin.token_env', running.admin.tokenEnv, next.admin.tokenEnv);
  check('state_dir', running.stateDir, next.stateDir);
  check('workers', String(running.workers), String(next.workers));
  check('server.engine', running.server.engine, next.server.engine);
  check('server.parser', running.server.parser, next.server.parser);
  // The source, and in kubernetes mode what is watched and how, are set up once at start.
  check('source', running.source, next.source);
  check('kubernetes', JSON.stringify(running.kubernetes), JSON.stringify(next.kubernetes));
  return issues;
}

function hostPort(hp: HostPort): string {
  return `${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
}

/** One line per issue: "file:line: key.path: message" (line and path when known). */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues
    .map((i) => {
      const where = i.line !== undefined ? `${i.file}:${i.line}` : i.file;
      return i.path === '' ? `${where}: ${i.message}` : `${where}: ${i.path}: ${i.message}`;
    })
    .join('\n');
}

/** Splits "clusters[1].endpoints[0]" into ["clusters", 1, "endpoints", 0]. */
export function splitKeyPath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of path.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) {
      out.push(part);
      continue;
    }
    if (m[1] !== '') out.push(m[1] as string);
    for (const idx of (m[2] ?? '').matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

/** The line of the deepest node along `path` that exists (the key itself for map entries). */
function lineOf(doc: Document, lc: LineCounter, path: string): number | null {
  let node: unknown = doc.contents;
  let offset: number | null = null;
  for (const seg of splitKeyPath(path)) {
    if (isMap(node)) {
      const pair = node.items.find((p) => {
        const k = p.key as { value?: unknown } | null;
        return (k && typeof k === 'object' && 'value' in k ? k.value : k) === seg;
      });
      if (!pair) break;
      const key = pair.key as { range?: [number, number, number] } | null;
      if (key?.range) offset = key.range[0];
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as { range?: [number, number, number] } | undefined;
      if (!item) break;
      if (item.range) offset = item.range[0];
      node = item;
    } else break;
  }
  return offset === null ? null : lc.linePos(offset).line;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

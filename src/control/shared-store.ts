// The traffic state shared by every gateway replica (kubernetes mode,
// `kubernetes.state_configmap`): one document with two keys,
//
//   traffic-state.json   the TrafficState (serializeTrafficState, as the file store writes it)
//   audit.jsonl          the newest AUDIT_TRAIL entries, oldest first, one per line
//
// kept in a ConfigMap and written with optimistic concurrency: every write
// names the document version (resourceVersion) it was decided on. When
// another replica wrote first, the write is refused (SharedDocConflict); the
// store re-reads the document and throws StateConflictError with the state
// now, and the controller decides the change again on it (re-read and
// re-apply). A change is answered only after the API server accepted it.
//
// The document is also watched (main.ts): another replica's write becomes this
// replica's state (TrafficController.adoptRemote). A document that does not
// parse (edited by hand) is refused loudly (`invalid`, the caller's status,
// metric, log and Event) and the last good state keeps serving; the next
// change writes a good document over it.
//
// The document access itself is the caller's (core/shared-doc.ts SharedDoc;
// kubernetes/coordination.ts holds the ConfigMap calls): no I/O here.
import { SharedDocConflict } from '../core/shared-doc.ts';
import type { SharedDoc } from '../core/shared-doc.ts';
import type { StateLoadResult, TrafficStore } from './state-store.ts';
import { StateConflictError, StateWriteError } from './state-store.ts';
import { parseAuditEvent, parseTrafficState, serializeTrafficState } from './traffic-state.ts';
import type { AuditEvent, AuditEventInput, TrafficState } from './traffic-state.ts';

export const STATE_KEY = 'traffic-state.json';
export const AUDIT_KEY = 'audit.jsonl';
/** Audit entries the shared document keeps (a ConfigMap holds at most 1 MiB). */
export const AUDIT_TRAIL = 200;

/** What the store made of a version of the document. */
export type RemoteResult =
  | { readonly kind: 'state'; readonly state: TrafficState }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'invalid'; readonly message: string };

export class SharedStateStore implements TrafficStore {
  readonly #doc: SharedDoc;
  /** The document version this replica last read or wrote. */
  #version: string | null = null;
  /** The last good state read or written. */
  #state: TrafficState | null = null;
  #trail: AuditEvent[] = [];
  #loaded: StateLoadResult = { state: null, recovered: null };
  /** Why the document as it is now was refused, or null. */
  #invalid: string | null = null;
  /** Audit entries recorded without a state change (refusals), written in the background. */
  #pendingAudit: AuditEvent[] = [];
  #flushing: Promise<void> | null = null;
  /** Serializes writes from this replica (commits and background audit flushes). */
  #writes: Promise<unknown> = Promise.resolve();
  readonly #onWriteError: (err: unknown) => void;

  constructor(doc: SharedDoc, onWriteError: (err: unknown) => void = () => {}) {
    this.#doc = doc;
    this.#onWriteError = onWriteError;
  }

  get where(): string {
    return this.#doc.where;
  }

  /** Why the shared document was refused (hand edit that does not parse), or null. */
  get invalid(): string | null {
    return this.#invalid;
  }

  /** The document version this replica knows. */
  get version(): string | null {
    return this.#version;
  }

  /**
   * Reads the document once before the controller starts (load() then answers
   * from it). A missing document is a first start; one that does not parse
   * is reported like a damaged state file (the gateway starts from the
   * configured weights, and its first change replaces the document).
   * Throws when the document cannot be read at all.
   */
  async init(): Promise<void> {
    let got = await this.#doc.read();
    if (got === null) {
      // The first replica creates the document (empty), so the others find and watch it.
      try {
        this.#version = await this.#doc.write(docData({ version: 0, apps: {} }, []), null);
        this.#state = { version: 0, apps: {} };
        this.#loaded = { state: null, recovered: null };
        return;
      } catch (err) {
        if (!(err instanceof SharedDocConflict)) throw err;
        got = await this.#doc.read(); // another replica was first
        if (got === null) return;
      }
    }
    this.#version = got.version;
    const parsed = parseDoc(got.data);
    if (parsed instanceof Error) {
      this.#invalid = parsed.message;
      this.#loaded = { state: null, recovered: `TRAFFIC STATE DAMAGED: ${this.where} is unusable (${parsed.message}); starting from the configured weights; the next change replaces it` };
      return;
    }
    this.#state = parsed.state;
    this.#trail = parsed.trail;
    this.#loaded = { state: parsed.state, recovered: null };
  }

  load(): StateLoadResult {
    return this.#loaded;
  }

  /**
   * Records a change: one write of the state with the audit trail plus the
   * entry. Another replica's write first → StateConflictError with the state
   * now; any other failure → StateWriteError (nothing was written).
   */
  commit(state: TrafficState, input: AuditEventInput): Promise<AuditEvent> {
    const run = async (): Promise<AuditEvent> => {
      const event: AuditEvent = { ...input, id: this.#nextId() };
      const trail = [...this.#trail, ...this.#pendingAudit, event].slice(-AUDIT_TRAIL);
      let version: string;
      try {
        version = await this.#doc.write(docData(state, trail), this.#version);
      } catch (err) {
        if (err instanceof SharedDocConflict) throw await this.#conflict();
        throw new StateWriteError('audit', null, err);
      }
      this.#version = version;
      this.#state = state;
      this.#trail = trail;
      this.#pendingAudit = [];
      this.#invalid = null;
      return event;
    };
    const p = this.#writes.then(run, run);
    this.#writes = p.catch(() => undefined);
    return p;
  }

  /** Re-reads after a refused write; the error the controller gets. */
  async #conflict(): Promise<Error> {
    let got: Awaited<ReturnType<SharedDoc['read']>>;
    try {
      got = await this.#doc.read();
    } catch (err) {
      return new StateWriteError('audit', null, err);
    }
    this.#version = got?.version ?? null;
    if (got === null) return new StateConflictError(this.#state ?? { version: 0, apps: {} });
    const parsed = parseDoc(got.data);
    if (parsed instanceof Error) {
      // A bad hand edit: keep the last good state; the retry writes over it.
      this.#invalid = parsed.message;
      return new StateConflictError(this.#state ?? { version: 0, apps: {} });
    }
    this.#state = parsed.state;
    this.#trail = parsed.trail;
    this.#invalid = null;
    return new StateConflictError(parsed.state);
  }

  /**
   * A version of the document seen by the watch. Returns the state it holds
   * when that is new to this replica, `unchanged` for this replica's own
   * write (or an old version), or why it was refused.
   */
  remote(data: Readonly<Record<string, string>>, version: string): RemoteResult {
    if (version === this.#version) return { kind: 'unchanged' };
    const parsed = parseDoc(data);
    if (parsed instanceof Error) {
      this.#invalid = parsed.message;
      return { kind: 'invalid', message: parsed.message };
    }
    this.#invalid = null;
    if (this.#state !== null && parsed.state.version < this.#state.version) return { kind: 'unchanged' };
    this.#version = version;
    this.#state = parsed.state;
    this.#trail = parsed.trail;
    return { kind: 'state', state: parsed.state };
  }

  /**
   * An entry with no state change (a refusal, a gateway event): kept at once
   * for readAudit and written to the shared trail in the background (with
   * the next change, or on its own).
   */
  appendAudit(input: AuditEventInput): AuditEvent {
    const event: AuditEvent = { ...input, id: this.#nextId() };
    this.#pendingAudit.push(event);
    this.#flushSoon();
    return event;
  }

  #flushSoon(): void {
    if (this.#flushing !== null) return;
    const run = async (): Promise<void> => {
      for (let attempt = 0; attempt < 5 && this.#pendingAudit.length > 0; attempt++) {
        const pending = [...this.#pendingAudit];
        const state = this.#state ?? { version: 0, apps: {} };
        const trail = [...this.#trail, ...pending].slice(-AUDIT_TRAIL);
        try {
          this.#version = await this.#doc.write(docData(state, trail), this.#version);
          this.#trail = trail;
          this.#pendingAudit = this.#pendingAudit.slice(pending.length);
          return;
        } catch (err) {
          if (err instanceof SharedDocConflict) {
            const e = await this.#conflict();
            if (e instanceof StateWriteError) {
              this.#onWriteError(e);
              return;
            }
            continue; // renumber on the newer trail and try again
          }
          this.#onWriteError(err);
          return;
        }
      }
    };
    this.#flushing = this.#writes.then(run, run).finally(() => {
      this.#flushing = null;
      if (this.#pendingAudit.length > 0) this.#flushSoon();
    });
    this.#writes = this.#flushing;
  }

  readAudit(limit: number): AuditEvent[] {
    return [...this.#trail, ...this.#pendingAudit].slice(-Math.max(0, limit)).reverse();
  }

  lastVersionedEvent(): AuditEvent | null {
    for (let i = this.#trail.length - 1; i >= 0; i--) if (this.#trail[i]!.version !== undefined) return this.#trail[i]!;
    return null;
  }

  #nextId(): number {
    let max = 0;
    for (const e of this.#trail) if (e.id > max) max = e.id;
    for (const e of this.#pendingAudit) if (e.id > max) max = e.id;
    return max + 1;
  }

  /** Waits until every background audit write has been tried (tests, shutdown). */
  async settle(): Promise<void> {
    while (this.#flushing !== null) await this.#flushing;
    await this.#writes;
  }
}

function docData(state: TrafficState, trail: readonly AuditEvent[]): Record<string, string> {
  return { [STATE_KEY]: serializeTrafficState(state), [AUDIT_KEY]: trail.map((e) => JSON.stringify(e)).join('\n') + (trail.length > 0 ? '\n' : '') };
}

function parseDoc(data: Readonly<Record<string, string>>): { state: TrafficState; trail: AuditEvent[] } | Error {
  const text = data[STATE_KEY];
  if (text === undefined) return new Error(`key ${STATE_KEY} is missing`);
  const state = parseTrafficState(text);
  if (state instanceof Error) return new Error(`${STATE_KEY}: ${state.message}`);
  const trail: AuditEvent[] = [];
  for (const line of (data[AUDIT_KEY] ?? '').split('\n')) {
    if (line.trim() === '') continue;
    const e = parseAuditEvent(line);
    if (e !== null) trail.push(e);
  }
  return { state, trail };
}

// A document several gateway replicas share, written only over the version it
// was read at (optimistic concurrency): the kubernetes mode's state ConfigMap
// (kubernetes/coordination.ts ConfigMapDoc) as control/shared-store.ts sees it.

export interface SharedDoc {
  /** For messages: e.g. "ConfigMap ray/serve-gateway-state". */
  readonly where: string;
  /** The data and version now, or null when the document does not exist. */
  read(): Promise<{ readonly data: Readonly<Record<string, string>>; readonly version: string } | null>;
  /**
   * Writes `data` if the document is still at `version` (null: create it);
   * returns the new version. Throws SharedDocConflict when it is not.
   */
  write(data: Readonly<Record<string, string>>, version: string | null): Promise<string>;
}

/** The document changed (or appeared, or went) since the version a write named. */
export class SharedDocConflict extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SharedDocConflict';
  }
}

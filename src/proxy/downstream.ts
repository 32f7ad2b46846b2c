// The request and response as the pipeline sees them, whichever server made
// them: node:http's IncomingMessage/ServerResponse (server.engine: node) or
// the lean server's H1Request/H1Response (server.engine: lean, h1-server.ts).
import type { Socket } from 'node:net';

/** What the pipeline uses of a client's request. */
export interface DownstreamRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly rawHeaders: string[];
  /** The whole request (body included) was received. */
  readonly complete: boolean;
  readonly socket: Socket;
}

/** What the pipeline uses of the response: node:http's ServerResponse or the lean server's H1Response. */
export interface DownstreamResponse {
  readonly req: DownstreamRequest;
  /** writeHead was called. */
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly writableFinished: boolean;
  /** The socket while this response is the one on the connection (null while a pipelined one waits). */
  readonly socket: Socket | null;
  writeHead(status: number, headers: string[]): unknown;
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer | string): unknown;
  flushHeaders(): void;
  writeContinue(): void;
  destroy(): unknown;
}

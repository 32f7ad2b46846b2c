// The listener every simulated server shares (Serve proxy, dashboard, control
// API): bind to an address (port 0 resolves to the real port), stop by closing
// the listener and destroying its connections (a killed process), start again.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { HostPort } from '../config/types.ts';

/** uvicorn's backlog is large; a burst of new connections must not overflow it. */
export const LISTEN_BACKLOG = 4096;

export function formatHostPort(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

export abstract class SimServer {
  /** Listen address; the port is the real one once started. */
  address: HostPort;
  #server: Server | null = null;

  constructor(address: HostPort) {
    this.address = address;
  }

  get up(): boolean {
    return this.#server !== null;
  }

  get url(): string {
    return `http://${formatHostPort(this.address)}`;
  }

  protected abstract serve(req: IncomingMessage, res: ServerResponse): void;

  /** Server options before listening (timeouts); none by default. */
  protected configure(server: Server): void {
    void server;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer((req, res) => this.serve(req, res));
    this.configure(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.address.host, port: this.address.port, backlog: LISTEN_BACKLOG }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr !== null && typeof addr === 'object') this.address = { host: this.address.host, port: addr.port };
    this.#server = server;
  }

  /** Stops listening and destroys every open connection. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

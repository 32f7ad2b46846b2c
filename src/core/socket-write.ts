// One buffer written to a socket's handle without going through the socket's Writable side, for
// the lean engines' hot writes (a response head with its small body, a later body chunk, a request
// head with its small body). socket.write() costs ≈ 150–200 ns of CPU more per write than the
// handle's own writeBuffer() with a reused request: the Writable's state machine and a new
// WriteWrap object each time (bench/write-path.ts; docs/benchmarks.md, "Eighth session"). Here one write request object is reused for as long as writes complete at once,
// which on a socket whose peer reads is nearly always.
//
// Node's own rules are kept: the handle tries the write at once (libuv's uv_try_write) and queues
// the rest; bytes go out in the order they were written, whether through here or socket.write()
// (libuv keeps one queue per stream, and this path is taken only while the Writable has nothing
// queued or corked). A write that had to be queued makes directWrite return false and the socket
// emits 'drain' when it is done, as socket.write() would; until then `pending` counts it, which
// writesPending() and needDrain() add to what the Writable reports.
//
// It needs Node's stream_wrap binding (WriteWrap and the stream state Node's own net.js reads),
// through process.binding. Where that is missing, every write is a socket.write().
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';

interface WriteReq {
  handle: StreamHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  /** The bytes of a queued write, kept alive until it is done. */
  buffer: Buffer | null;
  writer: DirectWriter | null;
  socket: Socket | null;
}

interface StreamHandle {
  writeBuffer(req: WriteReq, data: Buffer): number;
}

interface StreamWrapBinding {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

function loadBinding(): StreamWrapBinding | null {
  try {
    const b = (process as unknown as { binding(name: string): Partial<StreamWrapBinding> }).binding('stream_wrap');
    if (typeof b.WriteWrap !== 'function' || !(b.streamBaseState instanceof Int32Array) || typeof b.kLastWriteWasAsync !== 'number') return null;
    return b as StreamWrapBinding;
  } catch {
    return null;
  }
}

const binding = loadBinding();
const WriteWrap = binding?.WriteWrap ?? null;
const state = binding?.streamBaseState ?? new Int32Array(8);
const LAST_WRITE_WAS_ASYNC = binding?.kLastWriteWasAsync ?? 0;

/** Whether writes can go to the handle directly in this process (false: always socket.write). */
export const DIRECT_WRITES = WriteWrap !== null;

/** Per-socket state: the reusable request, and the writes still queued in libuv. */
export class DirectWriter {
  req: WriteReq | null = null;
  /** Writes through here that libuv still holds (each is done when its oncomplete runs). */
  pending = 0;
}

/**
 * Writes `buf` to `s`: straight to its handle when its Writable side is idle, else socket.write().
 * false = the bytes are queued (wait for 'drain'), as socket.write() says it.
 */
export function directWrite(s: Socket, w: DirectWriter, buf: Buffer): boolean {
  const h = (s as Socket & { _handle?: StreamHandle | null })._handle;
  if (WriteWrap === null || h == null || w.pending > 0 || s.writableLength !== 0 || s.writableCorked !== 0 || s.connecting || s.writableEnded || s.destroyed) return s.write(buf);
  let req = w.req;
  if (req === null) {
    req = new WriteWrap();
    req.handle = h;
    req.oncomplete = onComplete;
    req.buffer = null;
    req.writer = w;
    req.socket = s;
    w.req = req;
  }
  const err = h.writeBuffer(req, buf);
  if (err !== 0) {
    s.destroy(writeError(err));
    return false;
  }
  if (state[LAST_WRITE_WAS_ASYNC] === 0) return true;
  // Queued: libuv holds `buf` until oncomplete, and this request belongs to that write now.
  req.buffer = buf;
  w.req = null;
  w.pending++;
  return false;
}

function onComplete(this: WriteReq, status: number): void {
  const w = this.writer!;
  const s = this.socket!;
  w.pending--;
  this.buffer = null;
  this.writer = null;
  this.socket = null;
  if (s.destroyed) return;
  if (status < 0) {
    s.destroy(writeError(status));
    return;
  }
  if (w.pending === 0) s.emit('drain');
}

/** A failed write as net.js reports one (`write EPIPE`, code `EPIPE`, errno, syscall). */
function writeError(errno: number): Error {
  let code: string;
  try {
    code = getSystemErrorName(errno);
  } catch {
    code = `E${-errno}`;
  }
  return Object.assign(new Error(`write ${code}`), { errno, code, syscall: 'write' });
}

/** Bytes written to `s` have not all left yet (through the Writable or this path). */
export function writesPending(s: Socket, w: DirectWriter): boolean {
  return w.pending > 0 || s.writableLength > 0;
}

/** socket.writableNeedDrain, counting this path's queued writes. */
export function needDrain(s: Socket, w: DirectWriter): boolean {
  return w.pending > 0 || s.writableNeedDrain;
}

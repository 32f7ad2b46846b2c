// Entry of a data-plane worker thread (src/workers/pool.ts starts it).
import { parentPort, workerData } from 'node:worker_threads';
import { DataPlane } from './data-plane.ts';
import type { FromWorker, ToWorker, WorkerInit } from './messages.ts';

const port = parentPort!;
export const plane = new DataPlane(workerData as WorkerInit, (m: FromWorker) => port.postMessage(m));
port.on('message', (m: ToWorker) => plane.onMessage(m));
await plane.start();

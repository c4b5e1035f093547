// The page's side of the engine worker: requests as promises, progress as a callback.

import type { Answer, FromWorker, Request, ToWorker } from './protocol.ts';

export type OnProgress = (done: number, total: number, what: string) => void;

/** The worker's one-line message for a request that failed (bad input, a missing layer, …). */
export class EngineError extends Error {
  override name = 'EngineError';
}

interface Pending {
  resolve(answer: unknown): void;
  reject(error: Error): void;
  progress?: OnProgress;
}

export class EngineClient {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  constructor() {
    this.#worker = new Worker(new URL('./engine-worker.ts', import.meta.url), { type: 'module', name: 'engine' });
    this.#worker.addEventListener('message', (event: MessageEvent<FromWorker>) => this.#receive(event.data));
    this.#worker.addEventListener('error', (event) => {
      // The worker itself failed (it could not start): every waiting request fails with that line.
      const error = new EngineError(`engine worker: ${event.message || 'failed to start'}`);
      for (const p of this.#pending.values()) p.reject(error);
      this.#pending.clear();
    });
  }

  request<R extends Request>(request: R, progress?: OnProgress, transfer: Transferable[] = []): Promise<Answer<R>> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (a: unknown) => void, reject, progress });
      this.#worker.postMessage({ id, request } satisfies ToWorker, transfer);
    });
  }

  #receive(message: FromWorker): void {
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    if (message.kind === 'progress') {
      pending.progress?.(message.done, message.total, message.what);
      return;
    }
    this.#pending.delete(message.id);
    if (message.kind === 'answer') pending.resolve(message.answer);
    else pending.reject(new EngineError(message.message));
  }
}

// The platform seam of the wasm backend: how to read the compiled module, start a worker thread and
// count cores under Node (worker_threads, fs), Deno and browsers (Workers, fetch). Nothing else in
// the backend touches a runtime-specific API.

type Env = { process?: { versions?: { node?: string }; env: Record<string, string | undefined> }; Deno?: { env: { get(k: string): string | undefined } }; navigator?: { hardwareConcurrency?: number } };
const g = globalThis as unknown as Env;

/** True under Node (Deno also defines `process`, but not `process.versions.node` without compat, so test Deno first). */
const isDeno = g.Deno !== undefined;
const isNode = !isDeno && g.process?.versions?.node !== undefined;

export const MODULE_URL = new URL('../../kernels/wasm/build/kernels.wasm', import.meta.url);
const WORKER_URL = new URL('./worker.mjs', import.meta.url);

/** The bytes of the compiled kernels. */
export async function loadModuleBytes(url: URL = MODULE_URL): Promise<Uint8Array> {
  if (isNode && url.protocol === 'file:') {
    const { readFile } = await import('node:fs/promises');
    return new Uint8Array(await readFile(url));
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`wasm backend: cannot load ${url.href}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** A started worker thread, whatever the runtime. */
export interface WorkerHandle {
  post(message: unknown): void;
  /** Resolves with the worker's first message (it says "ready" once its instance exists). */
  firstMessage(): Promise<unknown>;
  terminate(): void;
}

export async function startWorker(): Promise<WorkerHandle> {
  // Deno runs node:worker_threads too, and only there can a worker be unref'd (a Web Worker would keep a
  // Deno program alive after its last line).
  if (isNode || isDeno) {
    const { Worker } = await import('node:worker_threads');
    const w = new Worker(WORKER_URL);
    return {
      post: (m) => w.postMessage(m),
      // Until it is ready the worker keeps the process alive (Deno would otherwise end a program that only
      // awaits it); after that it blocks in Atomics.wait between dispatches and must not.
      firstMessage: () => new Promise((resolve, reject) => {
        w.once('message', (m) => {
          w.unref();
          resolve(m);
        });
        w.once('error', reject);
      }),
      terminate: () => void w.terminate(),
    };
  }
  const WorkerCtor = (globalThis as unknown as { Worker?: new (url: URL, o: { type: 'module' }) => Worker }).Worker;
  if (!WorkerCtor) throw new Error('wasm backend: this runtime has no Worker');
  const w = new WorkerCtor(WORKER_URL, { type: 'module' });
  return {
    post: (m) => w.postMessage(m),
    firstMessage: () => new Promise((resolve, reject) => {
      w.addEventListener('message', (e) => resolve((e as MessageEvent).data), { once: true });
      w.addEventListener('error', (e) => reject(new Error(`wasm worker: ${(e as ErrorEvent).message}`)), { once: true });
    }),
    terminate: () => w.terminate(),
  };
}

/** Cores available to this process. */
export async function availableCores(): Promise<number> {
  if (isNode) {
    const os = await import('node:os');
    return (os as { availableParallelism?: () => number }).availableParallelism?.() ?? os.cpus().length;
  }
  return g.navigator?.hardwareConcurrency ?? 1;
}

/** An environment variable under Node or Deno (undefined in browsers or without permission). */
export function envVar(name: string): string | undefined {
  try {
    return isDeno ? g.Deno!.env.get(name) : g.process?.env[name];
  } catch {
    return undefined;
  }
}

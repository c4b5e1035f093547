// The thread pool: the calling thread plus `threads − 1` workers over the one shared memory. A dispatch
// writes its kernel, argument address and task count into the control block, stamps the claim word
// with a fresh tag, bumps the sequence word and wakes sleeping workers (Atomics.notify); then the
// caller claims tasks itself like any worker. Tasks are claimed by compare-and-swap inside the module,
// so a worker that is slow to wake simply finds no task left, and the caller never waits for it — only
// for tasks that are already running. No message is posted per dispatch. The caller spins on the
// finished count rather than blocking (a browser page's main thread may not Atomics.wait).

import { CTL_ARGS, CTL_BASE, CTL_CLAIM, CTL_FAILED, CTL_FINISHED, CTL_KERNEL, CTL_SEQ, CTL_SHUTDOWN, CTL_TASKS, CTL_WORDS, MAX_TASKS } from '../../kernels/wasm/assembly/ids.ts';
import { startWorker, type WorkerHandle } from './platform.ts';

export interface KernelExports {
  work(tid: number): void;
  runOne(kernel: number, args: number, task: number): void;
  dataEnd(): number;
  heapBase(): number;
}

export class ThreadPool {
  private readonly ctl: Int32Array;
  private tag = 0;
  /** Dispatches that went to the workers, and those run by the caller alone. */
  readonly stats = { shared: 0, alone: 0 };

  private constructor(memory: WebAssembly.Memory, private readonly exports: KernelExports, private readonly workers: WorkerHandle[]) {
    this.ctl = new Int32Array(memory.buffer, CTL_BASE, CTL_WORDS);
  }

  /** Starts `threads − 1` workers, each instantiating `bytes` over `memory`. */
  static async start(bytes: Uint8Array, memory: WebAssembly.Memory, exports: KernelExports, threads: number): Promise<ThreadPool> {
    const workers: WorkerHandle[] = [];
    try {
      for (let tid = 1; tid < threads; tid++) workers.push(await startWorker());
      await Promise.all(
        workers.map(async (w, i) => {
          const ready = w.firstMessage();
          w.post({ bytes, memory, tid: i + 1 });
          const m = await ready;
          if (m !== 'ready') throw new Error(`wasm worker ${i + 1}: unexpected first message ${String(m)}`);
        }),
      );
    } catch (err) {
      workers.forEach((w) => w.terminate());
      throw err;
    }
    return new ThreadPool(memory, exports, workers);
  }

  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Runs `tasks` tasks of `kernel` with its arguments at byte address `args`. With `alone` (a small
   * problem) or no workers, the caller runs them without waking anyone.
   */
  run(kernel: number, args: number, tasks: number, alone: boolean): void {
    if (tasks <= 0) return;
    if (tasks > MAX_TASKS) throw new Error(`wasm backend: internal: ${tasks} tasks in one dispatch (at most ${MAX_TASKS})`);
    if (alone || this.workers.length === 0 || tasks === 1) {
      this.stats.alone++;
      for (let t = 0; t < tasks; t++) this.exports.runOne(kernel, args, t);
      return;
    }
    this.stats.shared++;
    const ctl = this.ctl;
    ctl[CTL_KERNEL] = kernel;
    ctl[CTL_ARGS] = args;
    ctl[CTL_TASKS] = tasks;
    Atomics.store(ctl, CTL_FINISHED, 0);
    Atomics.store(ctl, CTL_FAILED, 0);
    this.tag = (this.tag + 1) & 0x7fff;
    Atomics.store(ctl, CTL_CLAIM, this.tag << 16);
    Atomics.add(ctl, CTL_SEQ, 1);
    Atomics.notify(ctl, CTL_SEQ);
    let trap: unknown = null;
    for (;;) {
      try {
        this.exports.work(0);
        break;
      } catch (err) {
        // A task trapped here: count it as finished and go on claiming, so that no worker is left
        // running this dispatch when it is reported.
        trap ??= err;
        Atomics.add(ctl, CTL_FINISHED, 1);
      }
    }
    while (Atomics.load(ctl, CTL_FINISHED) < tasks) {
      // Only tasks that a worker is running remain: wait for them.
    }
    const failedInWorkers = Atomics.load(ctl, CTL_FAILED);
    if (trap !== null || failedInWorkers > 0) {
      const why = trap instanceof Error ? trap.message : `${failedInWorkers} task(s) in worker threads`;
      throw new Error(`wasm backend: internal: kernel ${kernel} trapped (${why})`);
    }
  }

  /** Stops the workers (they leave their loop and exit). */
  close(): void {
    Atomics.store(this.ctl, CTL_SHUTDOWN, 1);
    Atomics.add(this.ctl, CTL_SEQ, 1);
    Atomics.notify(this.ctl, CTL_SEQ);
    this.workers.forEach((w) => w.terminate());
    this.workers.length = 0;
  }
}

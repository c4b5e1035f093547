// A wasm backend worker thread (plain JavaScript: Node's worker_threads, Deno and browser Workers run it
// as is). It instantiates the kernels over the shared memory, says "ready", then waits on the control
// block's sequence word and joins each dispatch by claiming tasks inside the module (`work`). No message
// is exchanged per dispatch.
//
// The numbers below mirror kernels/wasm/assembly/ids.ts (checked by test/wasm-backend.test.ts).
const CTL_BASE = 65536;
const CTL_SEQ = 0;
const CTL_SHUTDOWN = 6;
const CTL_FINISHED = 2;
const CTL_FAILED = 7;
/** Polls of the sequence word before sleeping: back-to-back dispatches then cost no wake-up. */
const SPINS = 4000;

// Node and Deno start this file with node:worker_threads (a parent port); browsers as a Web Worker.
const serverSide = typeof Deno !== 'undefined' || (typeof process !== 'undefined' && process.versions?.node !== undefined);
const port = serverSide ? (await import('node:worker_threads')).parentPort : null;

function onFirstMessage(handler) {
  if (port) port.once('message', handler);
  else self.addEventListener('message', (e) => handler(e.data), { once: true });
}

function reply(message) {
  if (port) port.postMessage(message);
  else self.postMessage(message);
}

onFirstMessage(async ({ bytes, memory, tid }) => {
  const { instance } = await WebAssembly.instantiate(bytes, { env: { memory } });
  const ctl = new Int32Array(memory.buffer, CTL_BASE, 64);
  reply('ready');
  let seen = Atomics.load(ctl, CTL_SEQ);
  for (;;) {
    let spins = 0;
    while (Atomics.load(ctl, CTL_SEQ) === seen) {
      if (++spins > SPINS) {
        Atomics.wait(ctl, CTL_SEQ, seen);
        spins = 0;
      }
    }
    seen = Atomics.load(ctl, CTL_SEQ);
    if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) break;
    try {
      instance.exports.work(tid);
    } catch {
      // A task trapped (a bug in a kernel or its plan): count it as finished, so the caller does not
      // wait forever, and as failed, so the caller reports it.
      Atomics.add(ctl, CTL_FAILED, 1);
      Atomics.add(ctl, CTL_FINISHED, 1);
    }
  }
  // Node's parent port ends the thread when closed; Deno's has no close() (its thread ends when this
  // returns, or when the backend terminates it); a browser's Worker ends by self.close().
  if (!port) self.close();
  else if (typeof port.close === 'function') port.close();
});

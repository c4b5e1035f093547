// The page's engine thread: answers the page's requests (protocol.ts) one at a time with a Session, so
// long computations never block the page. Errors go back as one line (the engine's messages are written
// to be shown as they are: they name the file, tensor, layer or option and what is wrong).

import type { FromWorker, Request, ToWorker } from './protocol.ts';
import { Session } from './session.ts';

const session = new Session();
const post = (message: FromWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(message, transfer);

/** One line: the first line of the message, or the error's name when it has none. */
function oneLine(e: unknown): string {
  const text = e instanceof Error ? e.message || e.name : String(e);
  return text.split('\n')[0];
}

/** Buffers to hand over rather than copy: every byte array and picture in an answer. */
function transferables(value: unknown, found = new Set<ArrayBuffer>()): ArrayBuffer[] {
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer) found.add(value.buffer);
  } else if (Array.isArray(value)) {
    for (const v of value) transferables(v, found);
  } else if (value && typeof value === 'object') {
    for (const v of Object.values(value)) transferables(v, found);
  }
  return [...found];
}

async function answer(id: number, request: Request): Promise<unknown> {
  switch (request.type) {
    case 'catalog':
      return session.catalog();
    case 'load':
      return session.load(request.model, request.backend);
    case 'addImage':
      return session.addImage(request.name, request.bytes);
    case 'removeImage':
      session.removeImage(request.imageId);
      return null;
    case 'run':
      return session.run(request.run, (done, total, what) => post({ id, kind: 'progress', done, total, what }));
  }
}

let queue: Promise<void> = Promise.resolve();

self.addEventListener('message', (event: MessageEvent<ToWorker>) => {
  const { id, request } = event.data;
  queue = queue.then(async () => {
    try {
      const result = await answer(id, request);
      post({ id, kind: 'answer', answer: result }, transferables(result));
    } catch (e) {
      post({ id, kind: 'error', message: oneLine(e) });
    }
  });
});
